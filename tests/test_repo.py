"""The repository itself: no pointer to the team's notes, CI runs the smoke recipe."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_project_files_never_point_to_the_teams_notes():
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if files.returncode != 0:
        pytest.skip("not a git checkout")
    needle = "shared/" + "notes"
    hits = [f for f in files.stdout.split() if (ROOT / f).is_file()
            and (ROOT / f).suffix in (".py", ".md", ".toml", ".txt", ".cfg", "")
            and needle in (ROOT / f).read_text(errors="ignore")]
    assert hits == [], hits


def test_ci_runs_the_smoke_recipe():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "train --config train/smoke.toml" in ci
