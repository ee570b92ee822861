"""Face detection, alignment and framing: frame in, faces and model-ready crops out. Light tier.

    from fer_edge.detect import FaceFinder, build_detector

    finder = FaceFinder(predictor.spec, "auto")   # detect -> align -> crop
    faces = finder(frame_bgr)                     # [Face(box, score, keypoints, crop)]

One module per part, lowest first (none imports one below it in this list):

- :mod:`~fer_edge.detect.geometry`: box helpers (IoU, scaling, moving a detection).
- :mod:`~fer_edge.detect.defaults`: detector names and default settings, defined once.
- :mod:`~fer_edge.detect.detection`: :class:`Detection` (box, score, keypoints) and the
  :class:`FaceDetector` base.
- :mod:`~fer_edge.detect.blazeface`: MediaPipe's BlazeFace (full and short range) on LiteRT:
  anchors, decoding, weighted NMS.
- :mod:`~fer_edge.detect.haar`, :mod:`~fer_edge.detect.yunet`: the OpenCV detectors.
- :mod:`~fer_edge.detect.tiled`: small faces in large frames (tiles).
- :mod:`~fer_edge.detect.refine`: the second, upright BlazeFace pass (``NAME+refine``).
- :mod:`~fer_edge.detect.finder`: :func:`build_detector` (a detector by name) and
  :class:`FaceFinder` (detect -> align -> crop with the crop rule of the model's spec).
- :mod:`~fer_edge.detect.crops`: the crop rules and box spread calibrated on FER-2013
  (``assets/face_crops.json``).
- :mod:`~fer_edge.detect.calibrate`: the command that measures them and writes that file
  (``python -m fer_edge.detect.calibrate``; not imported here: it reads a dataset).

Frames are (H, W, 3) uint8 BGR (OpenCV order) or (H, W) uint8 grey; boxes are (x, y, w, h)
frame pixels; crops are (48, 48) uint8 grey.
"""

from __future__ import annotations

from fer_edge.detect.blazeface import BlazeFaceDetector, shrink, ssd_anchors, weighted_nms
from fer_edge.detect.crops import (
    CALIBRATION_FILE,
    BoxSpread,
    box_spread,
    calibrated_crops,
    crop_fields,
)
from fer_edge.detect.defaults import (
    ASSETS,
    AUTO,
    DEFAULT_SCORE,
    DEMO_TILES,
    DETECT_WIDTH,
    DETECTORS,
    REFINE,
    REFINE_REUSE,
    TILES,
    VIDEO_REFINE_REUSE,
)
from fer_edge.detect.detection import Detection, FaceDetector
from fer_edge.detect.finder import Face, FaceFinder, build_detector, detector_name
from fer_edge.detect.geometry import Box, iou
from fer_edge.detect.haar import HaarFaceDetector
from fer_edge.detect.refine import RefinedDetector
from fer_edge.detect.tiled import TiledDetector, merge_faces, parse_tiles, tile_grid
from fer_edge.detect.yunet import YuNetFaceDetector

__all__ = [
    "ASSETS", "AUTO", "CALIBRATION_FILE", "DEFAULT_SCORE", "DEMO_TILES", "DETECTORS",
    "DETECT_WIDTH", "REFINE", "REFINE_REUSE", "TILES", "VIDEO_REFINE_REUSE",
    "BlazeFaceDetector", "Box", "BoxSpread", "Detection", "Face", "FaceDetector", "FaceFinder",
    "HaarFaceDetector", "RefinedDetector", "TiledDetector", "YuNetFaceDetector", "box_spread",
    "build_detector", "calibrated_crops", "crop_fields", "detector_name", "iou", "merge_faces",
    "parse_tiles", "shrink", "ssd_anchors", "tile_grid", "weighted_nms",
]
