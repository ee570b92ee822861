"""FER-2013 faces pasted into larger frames at known boxes. Light tier (numpy + OpenCV).

Real pixels with a known answer: a 48x48 dataset face is upscaled to ``side`` pixels, rotated
in-plane by ``angle`` degrees about its centre and pasted into a textured background frame, so
the true face box (the unrotated square, centre and side), its angle and its label are known.
Used to calibrate each detector's crop rule
(:mod:`fer_edge.detect.calibrate`), to measure detectors
(``benchmarks/detectors.py``) and what detection + alignment do to accuracy
(``studies/pasted_accuracy/pasted_accuracy.py``), and in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PastedFace:
    """Where a face was pasted.

    Attributes:
        frame: (H, W, 3) uint8 BGR frame.
        box: (x, y, w, h) float of the face square before rotation (w == h == side).
        angle: in-plane rotation in degrees, positive = clockwise on screen (the sign of
            :func:`fer_edge.preprocess.eye_angle` for the rotated face).
        index: row of the face in the array it came from.
    """

    frame: np.ndarray
    box: tuple[float, float, float, float]
    angle: float
    index: int

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour texture (no faces): (H, W, 3) uint8 BGR."""
    coarse = rng.uniform(40, 215, (max(2, height // 80), max(2, width // 80), 3))
    bg = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    bg += rng.normal(0, 6, bg.shape).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


def paste(face: np.ndarray, side: float, centre: tuple[float, float], angle: float,
          frame: np.ndarray) -> np.ndarray:
    """Paste a grey face, upscaled to ``side`` and rotated by ``angle``, into ``frame``.

    Args:
        face: (h, w) uint8 grey (a 48x48 FER-2013 face).
        side: pasted side in frame pixels.
        centre: (x, y) of the face centre in the frame.
        angle: degrees, positive = clockwise on screen.
        frame: (H, W, 3) uint8 BGR, modified in place.

    Returns:
        ``frame``.
    """
    h, w = face.shape[:2]
    s = side / w
    # clockwise on screen = negative angle for getRotationMatrix2D (counter-clockwise positive)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, s)
    m[:, 2] += (centre[0] - w / 2, centre[1] - h / 2)
    H, W = frame.shape[:2]
    interp = cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA
    warped = cv2.warpAffine(face, m, (W, H), flags=interp)
    mask = cv2.warpAffine(np.full(face.shape[:2], 255, np.uint8), m, (W, H),
                          flags=cv2.INTER_LINEAR)
    a = (mask.astype(np.float32) / 255.0)[..., None]
    out = frame.astype(np.float32) * (1 - a) + warped[..., None].astype(np.float32) * a
    frame[:] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return frame


def pasted_frames(faces: np.ndarray, seed: int = 0, size: tuple[int, int] = (640, 480),
                  sides: tuple[float, float] = (30, 300), max_angle: float = 30.0,
                  indices: np.ndarray | None = None):
    """Yield one frame per face: random side (log-uniform in ``sides``), position (face fully
    inside the frame) and angle (uniform in +-``max_angle``).

    Args:
        faces: (N, 48, 48) uint8 grey faces.
        seed: random seed (the same seed gives the same frames).
        size: frame (width, height).
        sides: min and max pasted side, pixels.
        max_angle: max |rotation| in degrees (0 = upright).
        indices: which faces (default all, in order).

    Yields:
        :class:`PastedFace`.
    """
    rng = np.random.default_rng(seed)
    W, H = size
    idx = np.arange(len(faces)) if indices is None else np.asarray(indices)
    for i in idx:
        side = float(np.exp(rng.uniform(np.log(sides[0]), np.log(min(sides[1], H * 0.7)))))
        angle = float(rng.uniform(-max_angle, max_angle)) if max_angle else 0.0
        r = side * 0.71  # half-diagonal: the rotated square stays inside
        cx, cy = rng.uniform(r, W - r), rng.uniform(r, H - r)
        frame = background(rng, H, W)
        paste(faces[i], side, (cx, cy), angle, frame)
        yield PastedFace(frame, (cx - side / 2, cy - side / 2, side, side), angle, int(i))
