"""A video file played over and over (``fer-edge serve --video F --loop``). Light tier."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fer_edge.demo.sources import VideoSource


class RepeatingVideo:
    """Every frame of a video file, from the start again at its end, until the loop stops.

    Yields ``(frame (H, W, 3) uint8 BGR, timestamp_s)``; timestamps keep counting across
    passes (pass k's frame j is at ``(k * n + j) / fps``), so frame numbers and times in logs
    and events never repeat.
    """

    live = independent = False
    skipped = 0

    def __init__(self, path: str):
        self.path = path
        self._video = VideoSource(path)  # a missing or unreadable file fails here, at once
        self.fps, self.name, self.dropped = self._video.fps, self._video.name, 0
        self.current = getattr(self._video, "current", self.name)  # the log's source column

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        i = 0
        while True:
            start = i
            for frame, _ in self._video:
                yield frame, i / self.fps
                i += 1
            if i == start:
                return
            self._video.close()
            self._video = VideoSource(self.path)

    def close(self) -> None:
        self._video.close()
