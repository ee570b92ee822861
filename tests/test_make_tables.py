"""The README results tables are generated from the manifest's CSVs and up to date
(benchmarks/make_tables.py, run as a script)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

TOOL = ROOT / "benchmarks" / "make_tables.py"
HEAD = "file,script,command,commit,model_sha256,run,note\n"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_readme_tables_are_up_to_date():
    """Regenerating every table in the READMEs changes nothing."""
    res = run("--check")
    assert res.returncode == 0, res.stdout + res.stderr


def test_readmes_have_generated_tables_from_listed_files():
    text = (ROOT / "benchmarks" / "README.md").read_text()
    assert text.count("<!-- table: ") >= 5 and "Source: `benchmarks/results/" in text


def make_repo(tmp_path, readme: str):
    res = tmp_path / "benchmarks" / "results"
    res.mkdir(parents=True)
    (res / "a.csv").write_text("build,fps,threads\nx,10.5,1\ny,20.0,2\n")
    (res / "MANIFEST.csv").write_text(HEAD + "a.csv,benchmarks/a.py,python benchmarks/a.py,"
                                      "abc1234,,,\n")
    (tmp_path / "README.md").write_text(readme)
    return tmp_path


def test_a_stale_table_is_found_then_regenerated(tmp_path):
    root = make_repo(tmp_path, "# x\n\n<!-- table: a.csv columns=build,fps where=threads:2 -->\n"
                               "| build | fps |\n|---|---|\n| y | 99 |\n<!-- /table -->\nend\n")
    res = run("--root", str(root), "--check")
    assert res.returncode == 1 and "README.md: out of date" in res.stdout
    assert run("--root", str(root)).returncode == 0
    text = (root / "README.md").read_text()
    assert "| y | 20.0 |" in text and "| x |" not in text and text.endswith("end\n")
    assert "written by `python benchmarks/a.py` (commit abc1234)" in text
    assert run("--root", str(root), "--check").returncode == 0


def test_a_table_of_an_unlisted_file_or_column_is_refused(tmp_path):
    root = make_repo(tmp_path, "<!-- table: b.csv -->\n<!-- /table -->\n")
    res = run("--root", str(root))
    assert res.returncode == 2 and "b.csv: not listed" in res.stderr
    (root / "README.md").write_text("<!-- table: a.csv columns=nope -->\n<!-- /table -->\n")
    res = run("--root", str(root))
    assert res.returncode == 2 and "no column 'nope'" in res.stderr
    assert "nope -->\n<!-- /table -->" in (root / "README.md").read_text()
