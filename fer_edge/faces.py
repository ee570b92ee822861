"""Face detectors. Light tier (OpenCV only).

- ``haar`` (default): the frontal-face Haar cascade that ships inside opencv-python 4.x
  (OpenCV 5 wheels dropped it; fer-edge pins OpenCV < 5).
- a path to a YuNet ``.onnx`` (``cv2.FaceDetectorYN``; the model is not shipped: the user
  passes the file, e.g. face_detection_yunet_2023mar.onnx from the OpenCV model zoo).

Both detect on a grey/colour frame downscaled to ``detect_width`` pixels (Haar on a full
640x480 frame costs ~50-80 ms on a laptop core; at 320 px about a quarter of that) and return
boxes in the original frame's pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_edge.errors import ModelFileError, SourceError
from fer_edge.preprocess import to_gray

Box = tuple[int, int, int, int]


def _scale_for(frame: np.ndarray, detect_width: int) -> float:
    w = frame.shape[1]
    return 1.0 if detect_width <= 0 or w <= detect_width else detect_width / w


class HaarFaceDetector:
    """OpenCV's Haar cascade on a downscaled grey frame (no histogram equalisation: on
    frames with large flat areas it washed faces out).

    Args:
        detect_width: width the frame is shrunk to before detection (0 = full size).
        scale_factor, min_neighbors: ``detectMultiScale`` parameters. On a 2-core AVX2 CPU a
            320-px frame took 63 ms with (1.1, min_size 40) and 27 ms with (1.2, 64), finding
            the sample clip's face in 20/20 frames either way.
        min_size: smallest face, pixels of the *original* frame.
        cascade: path of a cascade XML; default the one bundled with OpenCV.
    """

    def __init__(self, detect_width: int = 320, scale_factor: float = 1.2,
                 min_neighbors: int = 6, min_size: int = 64, cascade: str | None = None):
        if cascade is None:
            base = getattr(getattr(cv2, "data", None), "haarcascades", "")
            cascade = str(Path(base) / "haarcascade_frontalface_default.xml")
        if not hasattr(cv2, "CascadeClassifier"):
            raise SourceError("this OpenCV has no CascadeClassifier (OpenCV 5 removed it); "
                              "pip install 'opencv-python-headless>=4.8,<5'")
        self._clf = cv2.CascadeClassifier(cascade)
        if self._clf.empty():
            raise ModelFileError(f"{cascade}: Haar cascade missing or unreadable; install "
                                 "opencv-python(-headless) 4.x, which ships it")
        self.detect_width, self.scale_factor = detect_width, scale_factor
        self.min_neighbors, self.min_size = min_neighbors, min_size

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Faces of a frame.

        Args:
            frame: (H, W, 3) uint8 BGR or (H, W) uint8 grey.

        Returns:
            [(x, y, w, h), ...] ints in frame pixels, largest first.
        """
        gray = to_gray(frame)
        s = _scale_for(gray, self.detect_width)
        small = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else gray
        m = max(12, int(self.min_size * s))
        found = self._clf.detectMultiScale(small, scaleFactor=self.scale_factor,
                                           minNeighbors=self.min_neighbors, minSize=(m, m))
        boxes = [tuple(int(round(v / s)) for v in b) for b in np.asarray(found).reshape(-1, 4)]
        return sorted(boxes, key=lambda b: -b[2] * b[3])


class YuNetFaceDetector:
    """YuNet through ``cv2.FaceDetectorYN`` from a local ``.onnx`` file."""

    def __init__(self, onnx_path: str | Path, detect_width: int = 320,
                 score_threshold: float = 0.7):
        p = Path(onnx_path)
        if not p.is_file():
            raise ModelFileError(f"{p}: YuNet model not found (pass the path of "
                                 "face_detection_yunet_*.onnx, or use --detector haar)")
        try:
            self._det = cv2.FaceDetectorYN.create(str(p), "", (320, 240), score_threshold)
        except cv2.error as exc:
            raise ModelFileError(f"{p}: not a YuNet model OpenCV can load "
                                 f"({str(exc).strip().splitlines()[-1][:100]})") from None
        self.detect_width = detect_width

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Same contract as :meth:`HaarFaceDetector.detect` (BGR or grey frame)."""
        bgr = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        s = _scale_for(bgr, self.detect_width)
        small = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else bgr
        self._det.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self._det.detect(small)
        if faces is None:
            return []
        boxes = [tuple(int(round(v / s)) for v in f[:4]) for f in faces]
        return sorted(boxes, key=lambda b: -b[2] * b[3])


def build_detector(name_or_path: str = "haar", **kwargs) -> HaarFaceDetector | YuNetFaceDetector:
    """``"haar"`` or a path to a YuNet ``.onnx``."""
    if name_or_path in ("haar", "", None):
        return HaarFaceDetector(**kwargs)
    if str(name_or_path).lower().endswith(".onnx"):
        return YuNetFaceDetector(name_or_path, **{k: v for k, v in kwargs.items()
                                                  if k == "detect_width"})
    raise SourceError(f"unknown face detector {name_or_path!r}: use haar or a YuNet .onnx path")
