"""``--save``: the annotated frames as a video file. Light tier."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_edge.errors import OutputError, SourceError


def letterbox(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` scaled to fit ``size`` (width, height) with its aspect kept, centred on black.

    Args:
        frame: (H, W, 3) uint8 BGR.
        size: (width, height) of the result.

    Returns:
        (height, width, 3) uint8 BGR.
    """
    w, h = size
    fh, fw = frame.shape[:2]
    s = min(w / fw, h / fh)
    nw, nh = max(1, round(fw * s)), max(1, round(fh * s))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else
                       cv2.INTER_LINEAR)
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y:y + nh, x:x + nw] = small
    return out


class VideoSaver:
    """Writes frames to ``path`` (.mp4 mp4v or .avi MJPG), opened at the first frame, whose
    size becomes the video's. A later frame of another size (photos of different sizes) is
    letterboxed to it (scaled to fit, aspect kept, black borders) so every frame is saved;
    ``resized`` counts them. ``close()`` finalises the file (an .mp4 is playable only then).

    Args:
        path: the output file.
        fps: frames per second of the video (0 = 20).
    """

    def __init__(self, path: str | Path, fps: float = 0.0):
        self.path, self.fps = Path(path), fps or 20.0
        self._w, self.size, self.frames, self.resized = None, None, 0, 0

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame."""
        if self._w is None:
            self._open(frame)
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = letterbox(frame, self.size)
            self.resized += 1
        self._w.write(frame)
        self.frames += 1

    def _open(self, frame: np.ndarray) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi"
                                          else "mp4v"))
        self.size = (frame.shape[1], frame.shape[0])
        w = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
        if not w.isOpened():
            raise SourceError(f"--save {self.path}: OpenCV cannot write a video there (not a "
                              "regular file, no space, or no codec); give a .mp4 or .avi in a "
                              "writable folder")
        self._w = w

    def close(self) -> None:
        """Finalise the file (writes an .mp4's index)."""
        if self._w is not None:
            self._w.release()

    def check(self) -> None:
        """After ``close``: OpenCV's writer fails silently (disk full, unwritable device).

        Raises:
            OutputError: frames were written but the file is missing or empty.
        """
        if self._w is None:
            return
        if not self.path.is_file() or self.path.stat().st_size == 0:
            raise OutputError(f"--save {self.path}: the video could not be written (disk "
                              "full, or not a regular file); free some space or choose "
                              "another file")
