"""benchmarks/results/MANIFEST.csv against the results folder, and the manifest tool itself
(benchmarks/manifest.py, run as a script)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

TOOL = ROOT / "benchmarks" / "manifest.py"
RESULTS = ROOT / "benchmarks" / "results"
MANIFEST = RESULTS / "MANIFEST.csv"
HEAD = "file,script,command,commit,model_sha256,run,note\n"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def git(*args: str) -> str:
    """``git -C ROOT ARGS`` stdout ("" when git is not installed, e.g. a bare rootfs)."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                              text=True).stdout.strip()
    except FileNotFoundError:
        return ""


def in_git() -> bool:
    return git("rev-parse", "--is-inside-work-tree") == "true"


def test_every_results_file_is_listed_and_every_listed_file_exists():
    with MANIFEST.open(newline="") as f:
        listed = [r["file"] for r in csv.DictReader(f)]
    present = sorted(p.name for p in RESULTS.iterdir()
                     if p.is_file() and p.name != "MANIFEST.csv" and not p.name.startswith("."))
    assert sorted(listed) == present


def test_manifest_check_passes_on_the_repository():
    """Rows complete, scripts present, sha256s well formed and matching the files' own
    sha256 columns, and (in a git checkout) every commit known to git."""
    res = run("check")
    assert res.returncode == 0, res.stdout + res.stderr


def test_commits_exist_in_git():
    if not in_git():
        pytest.skip("not a git checkout: commits cannot be checked")
    with MANIFEST.open(newline="") as f:
        commits = {r["commit"] for r in csv.DictReader(f)}
    for c in commits:
        assert subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{c}^{{commit}}"]
                              ).returncode == 0, c


def test_codename_files_explain_their_run():
    with MANIFEST.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["file"].startswith(("generalization_", "train_history_", "wise_ft_val_")):
            code = r["file"].rsplit("_", 1)[1].split(".")[0]
            assert r["run"].startswith(code + ":") or code in r["run"], r["file"]


@pytest.fixture
def copy(tmp_path):
    """A results folder of two files and a manifest listing one of them."""
    res = tmp_path / "results"
    res.mkdir()
    (res / "a.csv").write_text("build,sha256,accuracy\nm.tflite,903bfb75fa3c,0.6\n")
    (res / "b.csv").write_text("x\n1\n")
    commit = git("log", "--format=%h", "-1") or "0000000"
    (res / "MANIFEST.csv").write_text(
        HEAD + f"a.csv,benchmarks/manifest.py,python x,{commit},m.tflite=903bfb75fa3c,,\n")
    return res, commit


def test_check_names_an_unlisted_file_a_missing_one_and_a_bad_sha(copy):
    res, commit = copy
    out = run("--results", str(res), "check")
    assert out.returncode == 1 and "b.csv: in" in out.stdout and "not listed" in out.stdout
    (res / "b.csv").unlink()
    (res / "MANIFEST.csv").write_text(
        HEAD + f"a.csv,benchmarks/manifest.py,python x,{commit},m.tflite=ffffffffffff,,\n"
        f"gone.csv,benchmarks/manifest.py,python x,{commit},,,\n")
    out = run("--results", str(res), "check")
    assert out.returncode == 1
    assert "gone.csv: listed" in out.stdout and "not in model_sha256" in out.stdout


def test_check_names_an_unknown_commit(copy):
    if not in_git():
        pytest.skip("not a git checkout: commits cannot be checked")
    res, _ = copy
    (res / "b.csv").unlink()
    (res / "MANIFEST.csv").write_text(HEAD + "a.csv,benchmarks/manifest.py,python x,"
                                      "0123abc,m.tflite=903bfb75fa3c,,\n")
    out = run("--results", str(res), "check")
    assert out.returncode == 1 and "commit 0123abc is not" in out.stdout


def test_add_writes_a_row_and_refuses_bad_input_without_touching_the_manifest(copy):
    res, commit = copy
    before = (res / "MANIFEST.csv").read_text()
    for args, msg in [
        (["add", "nope.csv", "--script", "benchmarks/manifest.py", "--command", "c"], "no such"),
        (["add", "a.csv", "--script", "benchmarks/manifest.py", "--command", "c"], "--replace"),
        (["add", "b.csv", "--script", "benchmarks/none.py", "--command", "c"], "--script"),
        (["add", "b.csv", "--script", "fer-edge benchmark", "--command", "c",
          "--model-sha256", "m.tflite=xyz", "--commit", commit], "not build="),
    ]:
        out = run("--results", str(res), *args)
        assert out.returncode == 2 and msg in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
        assert (res / "MANIFEST.csv").read_text() == before
    out = run("--results", str(res), "add", "b.csv", "--script", "fer-edge benchmark",
              "--command", "fer-edge benchmark x", "--commit", commit, "--run", "b: a test")
    assert out.returncode == 0, out.stderr
    assert run("--results", str(res), "check").returncode == 0
    with (res / "MANIFEST.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["a.csv", "b.csv"] and rows[1]["run"] == "b: a test"


def test_add_takes_the_commit_from_git_when_not_given(copy, tmp_path):
    if not in_git():
        pytest.skip("not a git checkout")
    res, _ = copy
    shutil.copy(res / "b.csv", res / "c.csv")
    out = run("--results", str(res), "add", "c.csv", "--script", "fer-edge benchmark",
              "--command", "x")
    assert out.returncode == 0, out.stderr
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    with (res / "MANIFEST.csv").open(newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert rows["c.csv"]["commit"] == head  # not committed: HEAD, the code that wrote it
