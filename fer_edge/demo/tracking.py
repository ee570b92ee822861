"""Per-face tracks across frames: IoU matching, EMA smoothing, label hysteresis. Light tier."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed over frames.

    Attributes:
        id: stable id (1, 2, ...).
        box: latest (x, y, w, h) in frame pixels.
        probs: (C,) float32 smoothed probabilities, or None before the first classification.
        raw: (C,) float32 newest unsmoothed probabilities.
        label: index of the shown (hysteresis-filtered) label, -1 before classification.
        misses: consecutive detection rounds without a match.
        eyes: (2, 2) float32 eye keypoints of the latest match (frame pixels), or None.
        rounds: classification rounds so far (the demo's alternating flip TTA uses it).
    """

    id: int
    box: Box
    probs: np.ndarray | None = None
    raw: np.ndarray | None = None
    label: int = -1
    misses: int = 0
    age: int = 0
    history: list = field(default_factory=list)
    eyes: np.ndarray | None = None
    rounds: int = 0


#: weight of the newest probabilities in a track's moving average (1 = no smoothing): the
#: demo's ``--ema`` and :class:`Tracker`'s default
DEFAULT_EMA = 0.35
#: margin by which another class's smoothed probability must beat the shown label's to
#: replace it: the demo's ``--hysteresis`` and :class:`Tracker`'s default
DEFAULT_HYSTERESIS = 0.08


class Tracker:
    """Greedy IoU matching of detections to tracks, with smoothing of their probabilities.

    Args:
        iou_threshold: minimum IoU to continue a track.
        max_misses: detection rounds a track survives without a match.
        ema: weight of the newest probabilities (1 = no smoothing).
        hysteresis: the shown label changes only when another class's smoothed probability
            beats it by this margin.
        keep_alive: detection rounds a track stays *visible* (shown and logged at its last
            box; the demo does not classify it) after its last match; 0 = only tracks matched
            in the latest round.
    """

    def __init__(self, iou_threshold: float = 0.3, max_misses: int = 3, ema: float = DEFAULT_EMA,
                 hysteresis: float = DEFAULT_HYSTERESIS, keep_alive: int = 0):
        self.iou_threshold, self.max_misses = iou_threshold, max(max_misses, keep_alive)
        self.ema, self.hysteresis, self.keep_alive = ema, hysteresis, keep_alive
        self.tracks: list[Track] = []
        self._next = 1

    def update(self, boxes: list[Box], eyes: list | None = None) -> list[Track]:
        """Match a detection round; returns the visible tracks.

        Args:
            boxes: [(x, y, w, h)] frame pixels.
            eyes: per box, (2, 2) eye keypoints or None (default: none).
        """
        eyes = list(eyes) if eyes is not None else [None] * len(boxes)
        pairs = sorted(((iou(t.box, b), i, j) for i, t in enumerate(self.tracks)
                        for j, b in enumerate(boxes)), reverse=True)
        used_t, used_b = set(), set()
        for score, i, j in pairs:
            if score < self.iou_threshold or i in used_t or j in used_b:
                continue
            used_t.add(i)
            used_b.add(j)
            self.tracks[i].box, self.tracks[i].misses = tuple(boxes[j]), 0
            self.tracks[i].eyes = eyes[j]
        for i, t in enumerate(self.tracks):
            if i not in used_t:
                t.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses]
        for j, b in enumerate(boxes):
            if j not in used_b:
                self.tracks.append(Track(self._next, tuple(b), eyes=eyes[j]))
                self._next += 1
        for t in self.tracks:
            t.age += 1
        return self.visible()

    def visible(self) -> list[Track]:
        """Tracks matched within the last ``keep_alive`` + 1 detection rounds."""
        return [t for t in self.tracks if t.misses <= self.keep_alive]

    def observe(self, track: Track, probs: np.ndarray) -> None:
        """Fold new (C,) probabilities into a track (EMA) and update its shown label."""
        probs = np.asarray(probs, np.float32)
        track.raw = probs
        track.probs = probs.copy() if track.probs is None else (
            self.ema * probs + (1 - self.ema) * track.probs)
        best = int(track.probs.argmax())
        if track.label < 0 or (best != track.label and track.probs[best]
                               >= track.probs[track.label] + self.hysteresis):
            track.label = best
