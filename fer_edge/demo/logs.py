"""Per-face, per-frame result logs (CSV or JSON Lines, or JSON Lines on stdout). Light tier."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np

from fer_edge.errors import OutputError


def _held_message(path: Path) -> str:
    return (f"--log {path}: another process is writing this log (it holds its lock); wait "
            "for that run to end or choose another name")


def check_not_held(path: str | Path) -> None:
    """Refuse, before a run starts, a log file another process is writing (a running demo
    holds an exclusive ``flock`` on its log). Nothing is changed.

    Raises:
        OutputError: the file exists and its lock is held.
    """
    p = Path(path)
    if not p.is_file():
        return
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError:
        return  # unreadable: check_output_file / the first write report it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OutputError(_held_message(p)) from None
    finally:
        os.close(fd)  # closing releases the probe's lock


class FaceLog:
    """One row per face per frame: frame index, timestamp (s), source (the photo's file name,
    or the video / camera name), face id, box, all class probabilities (smoothed; raw for
    photos), the shown label, and the raw top label. Flushed every frame so an interrupted run
    keeps everything up to its last frame.

    The file is created at the first row, not before: a run that logs nothing (no face, or an
    unreadable input) leaves no file behind to block its rerun. While open it holds an
    exclusive ``flock``, so a second demo given the same ``--log`` is refused instead of
    interleaving or truncating this run's rows. ``path`` "-" streams JSON Lines to stdout.

    Args:
        path: .csv or .jsonl file (suffix case-insensitive), or "-".
        labels: class names in output order.
        force: an existing file may be replaced (never one another process holds).
    """

    def __init__(self, path: str | Path, labels: tuple[str, ...], force: bool = False):
        self.stdout = str(path) == "-"
        self.path, self.labels, self.force = Path(path), labels, force
        self._jsonl = self.stdout or self.path.suffix.lower() == ".jsonl"
        self.fields = ["frame", "timestamp", "source", "face_id", "x", "y", "w", "h",
                       *[f"p_{lab}" for lab in labels], "label", "raw_label"]
        self._f = self._w = None
        self.rows = 0

    def write(self, frame: int, timestamp: float, tracks, source: str = "") -> None:
        """Log the classified tracks of one frame (tracks not yet classified are skipped)."""
        try:
            self._write(frame, timestamp, tracks, source)
        except BrokenPipeError:
            if not self.stdout:
                raise
            # later flushes (the interpreter's at exit) go nowhere instead of failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise OutputError(f"--log -: the program reading standard output stopped reading "
                              f"(broken pipe) after {self.rows} row(s); the run stopped") from None
        except OSError as exc:  # e.g. disk full: name the file, not just the errno
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    def _write(self, frame: int, timestamp: float, tracks, source: str) -> None:
        rows = [[frame, round(timestamp, 4), source, t.id, *map(int, t.box),
                 *[round(float(p), 5) for p in t.probs], self.labels[t.label],
                 self.labels[int(np.argmax(t.raw))]] for t in tracks if t.probs is not None]
        if not rows:
            return
        if self._f is None:
            self._open()
        for row in rows:
            if self._jsonl:
                self._f.write(json.dumps(dict(zip(self.fields, row))) + "\n")
            else:
                self._w.writerow(row)
            self.rows += 1
        self._f.flush()

    def _open(self) -> None:
        """Create the file (refusing one that appeared since the start, unless ``force``),
        take its lock, and write the CSV header."""
        if self.stdout:
            self._f = sys.stdout
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | (0 if self.force else os.O_EXCL)
            try:
                fd = os.open(self.path, flags, 0o666)
            except FileExistsError:
                raise OutputError(f"--log {self.path}: appeared while this run started "
                                  "(another run writing it?); pass --force to replace it, or "
                                  "choose another name") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputError(_held_message(self.path)) from None
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.ftruncate(fd, 0)  # only now: a held file is never truncated
            self._f = os.fdopen(fd, "w", newline="")
        if not self._jsonl:
            self._w = csv.writer(self._f)
            self._w.writerow(self.fields)

    def close(self) -> None:
        """Flush and close (releasing the lock); stdout is flushed, not closed."""
        if self._f is None or self._f.closed:
            return
        if self.stdout:
            self._f.flush()
        else:
            self._f.close()
