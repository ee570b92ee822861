"""What the page shows besides the video: the run's status and the emotion timeline. Light
tier.

Written only by the demo loop's serve sink, read by ``/stats.json``. The loop never takes a
lock here (a lock held by an HTTP thread that the OS has just put to sleep would stall the
loop): it replaces whole values (one reference assignment, atomic in CPython) and readers copy
what they read.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

#: width of one timeline point (s) and how far back the timeline reaches (s)
TIMELINE_BUCKET_S = 2.0
TIMELINE_SPAN_S = 300.0


class Timeline:
    """The emotion mix over the last ``span_s`` seconds: per ``bucket_s`` of wall-clock time,
    the mean of the (smoothed) class probabilities of every face classified in it.

    Args:
        num_classes: C.
    """

    def __init__(self, num_classes: int, bucket_s: float = TIMELINE_BUCKET_S,
                 span_s: float = TIMELINE_SPAN_S):
        self.bucket_s = bucket_s
        self._buckets: deque = deque(maxlen=max(1, int(span_s / bucket_s)))
        self._c = num_classes

    def add(self, wall: float, probs: np.ndarray) -> None:
        """One classified face at ``wall`` (``time.time()``); ``probs`` (C,) float. A bucket
        is an immutable (start, sums, count) tuple, replaced as a whole."""
        start = wall - wall % self.bucket_s
        if self._buckets and self._buckets[-1][0] == start:
            _, sums, n = self._buckets[-1]
            self._buckets[-1] = (start, sums + probs, n + 1)
        else:
            self._buckets.append((start, np.asarray(probs, np.float64), 1))

    def points(self) -> list[dict]:
        """``[{"t": bucket start (epoch s), "n": faces, "mix": [C floats summing to 1]}]``."""
        return [{"t": round(t, 3), "n": n, "mix": [round(float(v), 4) for v in s / n]}
                for t, s, n in list(self._buckets)]


class LiveState:
    """The run's status for ``/stats.json``.

    Args:
        about: what is running (model, detector, profile, source, ...), shown as is.
        labels: class names in output order.
    """

    def __init__(self, about: dict, labels: tuple[str, ...] = ()):
        self.about: dict = {}
        self.configure(about, labels)
        self.started = time.time()
        self._live: dict = {"frames": 0, "fps": 0.0, "stages_ms": {}, "faces": [],
                            "frame": -1, "time": 0.0}
        self._source = ("starting", "")
        self.events = 0

    def configure(self, about: dict, labels: tuple[str, ...]) -> None:
        """Set what is running (once the model is loaded) and its class names."""
        self.about = {**self.about, **about}
        self.labels = tuple(labels)
        self.timeline = Timeline(max(1, len(labels)))

    def update(self, live: dict) -> None:
        """The loop's newest status (a new dict each time, never changed afterwards)."""
        self._live = live

    def add_classified(self, wall: float, probs: list[np.ndarray]) -> None:
        for p in probs:
            self.timeline.add(wall, p)
        self.events += len(probs)

    def set_source(self, state: str, message: str = "") -> None:
        """``state``: starting, running, ended (a file's end), stopped or lost (a camera
        failed)."""
        self._source = (state, message)

    def to_dict(self, extra: dict | None = None) -> dict:
        state, message = self._source
        return {**self.about, "labels": list(self.labels), **self._live,
                "source_state": state, "source_message": message, "events": self.events,
                "uptime_s": round(time.time() - self.started, 1),
                "timeline_bucket_s": self.timeline.bucket_s,
                "timeline": self.timeline.points(), **(extra or {})}
