"""Helpers for the hardening sweep's contract, shared by the demo test modules: exit 2, exactly
one ``fer-edge <cmd>: error:`` line (the last on stderr) naming the problem and the fix, no
traceback, nothing in the workspace created, changed or removed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fer_edge.cli import main


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a digest of its content and mode."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_symlink():
            out[str(p)] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[str(p)] = "dir"
        else:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
    return out


def run_cli(args: list[str], capsys) -> tuple[int, list[str], str]:
    """``fer-edge ARGS`` in-process: (exit code, stderr lines, stdout)."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.err.strip().splitlines(), cap.out


def assert_refused(args: list[str], capsys, workspace: Path, *words: str) -> str:
    """The command exits 2 with one error line holding ``words``, and ``workspace`` is left
    exactly as it was; returns the error line."""
    before = snapshot(workspace)
    rc, err, _ = run_cli(args, capsys)
    assert rc == 2, err
    assert not any("Traceback" in ln for ln in err), err
    ours = [ln for ln in err if ln.startswith("fer-edge")]
    assert len(ours) == 1 and ours[0] == err[-1] and ": error: " in ours[0], err
    for w in words:
        assert w in ours[0], f"{w!r} not in {ours[0]!r}"
    assert snapshot(workspace) == before, "a file of the workspace was created, changed or lost"
    return ours[0]
