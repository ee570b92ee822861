"""What every detector returns and checks: :class:`Detection`, the :class:`FaceDetector` base,
frame and threshold checks. Light tier (numpy).

Every detector has ``detect_faces(frame) -> [Detection]`` (box, score, keypoints in frame
pixels; the first two keypoints are the eyes where the detector has them) and
``detect(frame) -> [(x, y, w, h)]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_edge.detect.geometry import Box
from fer_edge.errors import ConfigError, SourceError


@dataclass(frozen=True)
class Detection:
    """One face found in a frame.

    Attributes:
        box: (x, y, w, h) float, frame pixels.
        score: detector confidence in [0, 1] (1.0 for Haar, which has none).
        keypoints: (K, 2) float32 (x, y) frame pixels, or None. BlazeFace: K = 6: the
            subject's right eye (image left on a frontal face), left eye, nose tip, mouth
            centre, right ear tragion, left ear tragion. YuNet: K = 5 (eyes, nose, mouth
            corners).
    """

    box: tuple[float, float, float, float]
    score: float = 1.0
    keypoints: np.ndarray | None = None

    @property
    def eyes(self) -> np.ndarray | None:
        """(2, 2) float32: right eye then left eye (frame pixels), or None."""
        return None if self.keypoints is None else self.keypoints[:2]

    def int_box(self) -> Box:
        """The box rounded to (x, y, w, h) ints."""
        return tuple(int(round(v)) for v in self.box)


class FaceDetector:
    """Base of the detectors: ``detect()`` (boxes only) from ``detect_faces()``."""

    name = "detector"

    def detect_faces(self, frame: np.ndarray) -> list[Detection]:
        raise NotImplementedError

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Faces of a frame as [(x, y, w, h), ...] ints in frame pixels, largest first.

        Args:
            frame: (H, W, 3) uint8 BGR or (H, W) uint8 grey.
        """
        return [d.int_box() for d in self.detect_faces(frame)]


def check_threshold(t: float) -> None:
    """Refuse a face score threshold outside (0, 1) (ConfigError)."""
    if not 0 < t < 1:
        raise ConfigError(f"face score threshold {t} is outside (0, 1); use e.g. 0.5")


def check_frame(frame: np.ndarray) -> None:
    """Refuse anything but an (H, W, 3|4|1) or (H, W) uint8 frame (SourceError)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3) \
            or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)) or min(frame.shape[:2]) < 1:
        raise SourceError(f"a frame must be an (H, W, 3) uint8 BGR or (H, W) uint8 array, got "
                          f"{getattr(frame, 'shape', type(frame))} "
                          f"{getattr(frame, 'dtype', '')}")
