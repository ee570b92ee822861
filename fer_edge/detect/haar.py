"""OpenCV's frontal-face Haar cascade (``--detector haar``): fer-edge's detector before
BlazeFace; no keypoints, no score. Light tier (opencv-python-headless < 5).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_edge.detect.defaults import DETECT_WIDTH, HAAR_MIN_SIZE
from fer_edge.detect.detection import Detection, FaceDetector, check_frame
from fer_edge.detect.geometry import scale_for
from fer_edge.errors import ModelFileError, SourceError
from fer_edge.preprocess import to_gray


class HaarFaceDetector(FaceDetector):
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

    name = "haar"

    def __init__(self, detect_width: int = DETECT_WIDTH, scale_factor: float = 1.2,
                 min_neighbors: int = 6, min_size: int = HAAR_MIN_SIZE, cascade: str | None = None):
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

    def detect_faces(self, frame: np.ndarray) -> list[Detection]:
        """Faces of a frame, largest first, no keypoints (score 1.0).

        Args:
            frame: (H, W, 3) uint8 BGR or (H, W) uint8 grey.
        """
        check_frame(frame)
        gray = to_gray(frame)
        s = scale_for(gray, self.detect_width)
        small = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else gray
        m = max(12, int(self.min_size * s))
        found = self._clf.detectMultiScale(small, scaleFactor=self.scale_factor,
                                           minNeighbors=self.min_neighbors, minSize=(m, m))
        boxes = [tuple(float(v) / s for v in b) for b in np.asarray(found).reshape(-1, 4)]
        return [Detection(b) for b in sorted(boxes, key=lambda b: -b[2] * b[3])]
