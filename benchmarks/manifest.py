"""The results manifest: ``benchmarks/results/MANIFEST.csv``, one row per results file.

Every file in ``benchmarks/results/`` (but the manifest itself) has one row saying what made
it, so a figure in a README can be traced to a script, a command and a commit:

- ``file``: the file's name in ``benchmarks/results/``;
- ``script``: the repository path of the script that wrote it (``benchmarks/demo_fps.py``), or
  the ``fer-edge`` command (``fer-edge benchmark``);
- ``command``: the command line that produced it, as run;
- ``commit``: the commit that produced it (by default ``git log --format=%h -1 -- FILE``: the
  commit that added the file with the code that wrote it);
- ``model_sha256``: the classifier build(s) it scored, ``"; "``-separated ``build=sha256``
  entries (the full sha256 where known, else the prefix the file records; ``""`` when unknown
  or when no classifier was scored);
- ``run``: for files named by a training-run codename (``ft2c``, ``s24``, ``l28``...), what that
  run was, in a few words;
- ``note``: anything a reader of the figures must know (several runs in one file, ...).

    python benchmarks/manifest.py check
    python benchmarks/manifest.py add demo_fps.csv --script benchmarks/demo_fps.py \\
        --command "python benchmarks/demo_fps.py --threads 1 --rounds 3"

``check`` exits 1 listing every problem (a results file with no row, a row with no file, a
commit git does not know, a malformed sha256, a sha256 the file's own ``sha256`` column
contradicts). ``add`` writes one row (``--replace`` to change an existing one); bad input
stops with one line and exit 2, the manifest untouched. Commits are only checked inside a git
checkout.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
NAME = "MANIFEST.csv"
COLUMNS = ("file", "script", "command", "commit", "model_sha256", "run", "note")
_SHA = re.compile(r"^[^=;]+=[0-9a-f]{12,64}$")


class ManifestError(Exception):
    """Bad input to ``add`` or an unreadable manifest: one line naming the problem and the fix."""


def read_manifest(path: Path) -> list[dict]:
    """The manifest's rows (dicts keyed by :data:`COLUMNS`); ManifestError on a wrong header."""
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest; create it with `manifest.py add`")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ManifestError(f"{path}: header must be {','.join(COLUMNS)}")
        return list(reader)


def write_manifest(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` sorted by file, atomically (a temporary name, then renamed)."""
    from fer_edge.io import atomic_write_csv

    ordered = sorted(({k: r.get(k, "") for k in COLUMNS} for r in rows), key=lambda r: r["file"])
    atomic_write_csv(path, ordered)


def results_files(results: Path) -> list[str]:
    """Names of the results files (not the manifest, not hidden files, not folders)."""
    return sorted(p.name for p in results.iterdir()
                  if p.is_file() and p.name != NAME and not p.name.startswith("."))


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def in_git_checkout(repo: Path) -> bool:
    """True when ``repo`` is inside a git work tree and git is installed."""
    try:
        return _git(repo, "rev-parse", "--is-inside-work-tree").stdout.strip() == "true"
    except OSError:
        return False


def commit_exists(repo: Path, commit: str) -> bool:
    """``git cat-file -e COMMIT^{commit}`` in ``repo``."""
    return bool(commit) and _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def last_commit(repo: Path, path: Path) -> str:
    """Short hash of the last commit that touched ``path`` ("" when never committed)."""
    return _git(repo, "log", "--format=%h", "-1", "--", str(path)).stdout.strip()


def is_clean(repo: Path, path: Path) -> bool:
    """``path`` is tracked and has no uncommitted change."""
    tracked = _git(repo, "ls-files", "--error-unmatch", str(path)).returncode == 0
    return tracked and not _git(repo, "status", "--porcelain", "--", str(path)).stdout.strip()


def file_shas(path: Path) -> set[str]:
    """The values of a results CSV's own ``sha256`` column (empty set when it has none)."""
    if path.suffix != ".csv":
        return set()
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if "sha256" not in (reader.fieldnames or ()):
            return set()
        return {r["sha256"] for r in reader if r.get("sha256")}


def sha_problems(row: dict, results: Path) -> list[str]:
    """Malformed ``model_sha256`` entries, and ones the file's own sha256 column contradicts."""
    entries = [e.strip() for e in row["model_sha256"].split(";") if e.strip()]
    out = [f"{row['file']}: model_sha256 entry {e!r} is not build=<12-64 hex digits>"
           for e in entries if not _SHA.match(e)]
    listed = [e.split("=", 1)[1] for e in entries if _SHA.match(e)]
    path = results / row["file"]
    for sha in sorted(file_shas(path)) if path.is_file() else ():
        if listed and not any(s.startswith(sha) or sha.startswith(s) for s in listed):
            out.append(f"{row['file']}: its sha256 {sha} is not in model_sha256")
    return out


def row_problems(row: dict, results: Path, repo: Path, git: bool) -> list[str]:
    """What is wrong with one manifest row."""
    name, out = row["file"], []
    if not (results / name).is_file():
        out.append(f"{name}: listed in {NAME} but not in {results}")
    for col in ("script", "command", "commit"):
        if not row[col].strip():
            out.append(f"{name}: empty {col}")
    script = row["script"].strip()
    if script and not script.startswith("fer-edge ") and not (repo / script).exists():
        out.append(f"{name}: script {script} does not exist in the repository")
    if git and row["commit"].strip() and not commit_exists(repo, row["commit"].strip()):
        out.append(f"{name}: commit {row['commit']} is not in this git repository")
    return out + sha_problems(row, results)


def problems(rows: list[dict], results: Path, repo: Path) -> list[str]:
    """Every disagreement between the manifest rows and the results folder."""
    git = in_git_checkout(repo)
    names = [r["file"] for r in rows]
    out = [f"{n}: listed {names.count(n)} times" for n in sorted(set(names))
           if names.count(n) > 1]
    out += [f"{n}: in {results} but not listed in {NAME}" for n in results_files(results)
            if n not in names]
    for row in rows:
        out += row_problems(row, results, repo, git)
    return out


def add_row(manifest: Path, results: Path, repo: Path, a: argparse.Namespace) -> dict:
    """Check ``a`` (the ``add`` arguments) and write its row; returns the row."""
    name = Path(a.file).name
    if not (results / name).is_file():
        raise ManifestError(f"{results / name}: no such results file; write it first")
    rows = read_manifest(manifest) if manifest.exists() else []
    if any(r["file"] == name for r in rows) and not a.replace:
        raise ManifestError(f"{name} is already listed in {manifest}; pass --replace to change it")
    if not a.script.startswith("fer-edge ") and not (repo / a.script).exists():
        raise ManifestError(f"--script {a.script}: not a repository path (or `fer-edge <command>`)")
    commit = a.commit or _default_commit(repo, results / name)
    row = {"file": name, "script": a.script, "command": a.command, "commit": commit,
           "model_sha256": a.model_sha256, "run": a.run, "note": a.note}
    bad = sha_problems(row, results)
    if bad:
        raise ManifestError(bad[0])
    write_manifest(manifest, [r for r in rows if r["file"] != name] + [row])
    return row


def _default_commit(repo: Path, path: Path) -> str:
    """The last commit of a committed file; HEAD (the code that just wrote it) otherwise."""
    if not in_git_checkout(repo):
        raise ManifestError("not in a git checkout: pass --commit")
    if is_clean(repo, path):
        return last_commit(repo, path)
    head = _git(repo, "rev-parse", "--short", "HEAD").stdout.strip()
    print(f"{path.name} is not committed: commit {head} (HEAD) recorded as the code that "
          "produced it; commit the file and this row together")
    return head


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="results folder")
    p.add_argument("--manifest", type=Path, default=None, help="default: RESULTS/MANIFEST.csv")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="check the manifest against the results folder")
    add = sub.add_parser("add", help="add (or --replace) one file's row")
    add.add_argument("file", help="results file (its name in the results folder)")
    add.add_argument("--script", required=True)
    add.add_argument("--command", required=True)
    add.add_argument("--commit", default="", help="default: the file's last commit (HEAD if "
                     "it is not committed yet)")
    add.add_argument("--model-sha256", default="", help="build=sha256[; build=sha256 ...]")
    add.add_argument("--run", default="", help="what the run codename in the name means")
    add.add_argument("--note", default="")
    add.add_argument("--replace", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    manifest = a.manifest or a.results / NAME
    try:
        if a.cmd == "add":
            row = add_row(manifest, a.results, ROOT, a)
            print(f"{manifest}: {row['file']} -> {row['script']} at {row['commit']}")
            return 0
        found = problems(read_manifest(manifest), a.results, ROOT)
    except ManifestError as exc:
        print(f"manifest: {exc}", file=sys.stderr)
        return 2
    for line in found:
        print(line)
    if not found:
        print(f"{manifest}: {len(results_files(a.results))} results files, every one listed")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
