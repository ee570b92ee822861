"""Per-face, per-frame result logs (CSV or JSON Lines). Light tier."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


class FaceLog:
    """One row per face per frame: frame index, timestamp (s), face id, box, all class
    probabilities (smoothed), the shown label, and the raw top label. Flushed every frame so an
    interrupted run keeps everything up to its last frame."""

    def __init__(self, path: str | Path, labels: tuple[str, ...]):
        self.path, self.labels = Path(path), labels
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("w", newline="")
        self._jsonl = self.path.suffix == ".jsonl"
        self.fields = ["frame", "timestamp", "face_id", "x", "y", "w", "h",
                       *[f"p_{lab}" for lab in labels], "label", "raw_label"]
        if not self._jsonl:
            self._w = csv.writer(self._f)
            self._w.writerow(self.fields)
        self.rows = 0

    def write(self, frame: int, timestamp: float, tracks) -> None:
        try:
            self._write(frame, timestamp, tracks)
        except OSError as exc:  # e.g. disk full: name the file, not just the errno
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    def _write(self, frame: int, timestamp: float, tracks) -> None:
        for t in tracks:
            if t.probs is None:
                continue
            row = [frame, round(timestamp, 4), t.id, *map(int, t.box),
                   *[round(float(p), 5) for p in t.probs], self.labels[t.label],
                   self.labels[int(np.argmax(t.raw))]]
            if self._jsonl:
                self._f.write(json.dumps(dict(zip(self.fields, row))) + "\n")
            else:
                self._w.writerow(row)
            self.rows += 1
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
