"""YuNet through ``cv2.FaceDetectorYN`` from a local ``.onnx`` file (``--detector PATH.onnx``;
not shipped): box, score and 5 keypoints. Light tier.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_edge.detect.defaults import DETECT_WIDTH, YUNET_SCORE
from fer_edge.detect.detection import Detection, FaceDetector, check_frame, check_threshold
from fer_edge.detect.geometry import scale_for
from fer_edge.errors import ModelFileError


class YuNetFaceDetector(FaceDetector):
    """YuNet through ``cv2.FaceDetectorYN`` from a local ``.onnx`` file (5 keypoints)."""

    name = "yunet"

    def __init__(self, onnx_path: str | Path, detect_width: int = DETECT_WIDTH,
                 score_threshold: float = YUNET_SCORE, min_size: int = 0):
        p = Path(onnx_path)
        if not p.is_file():
            raise ModelFileError(f"{p}: YuNet model not found (pass the path of "
                                 "face_detection_yunet_*.onnx, or use --detector auto)")
        check_threshold(score_threshold)
        try:
            self._det = cv2.FaceDetectorYN.create(str(p), "", (320, 240), score_threshold)
        except cv2.error as exc:
            raise ModelFileError(f"{p}: not a YuNet model OpenCV can load "
                                 f"({str(exc).strip().splitlines()[-1][:100]})") from None
        self.detect_width, self.min_size = detect_width, min_size

    def detect_faces(self, frame: np.ndarray) -> list[Detection]:
        """Same contract as :meth:`BlazeFaceDetector.detect_faces` (BGR or grey frame)."""
        check_frame(frame)
        bgr = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        s = scale_for(bgr, self.detect_width)
        small = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else bgr
        self._det.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self._det.detect(small)
        if faces is None:
            return []
        out = [Detection(tuple(float(v) / s for v in f[:4]), float(f[14]),
                         (f[4:14].reshape(5, 2) / s).astype(np.float32)) for f in faces]
        out = [d for d in out if d.box[2] >= self.min_size]
        return sorted(out, key=lambda d: -d.box[2] * d.box[3])
