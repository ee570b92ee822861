"""The product function: detect -> align -> crop (:class:`FaceFinder`), and building a
detector by name (:func:`build_detector`). Light tier.

Detectors (``build_detector(name)``; ``--detector`` in the demo):

- ``blazeface-full``, ``blazeface-short``: MediaPipe's BlazeFace on LiteRT
  (:mod:`fer_edge.detect.blazeface`).
- ``haar``: OpenCV's frontal-face Haar cascade (:mod:`fer_edge.detect.haar`).
- a path to a YuNet ``.onnx`` (:mod:`fer_edge.detect.yunet`; not shipped).
- ``NAME+refine`` (``blazeface-full+refine`` is what ``auto`` means): a second, upright
  BlazeFace pass on each face (:mod:`fer_edge.detect.refine`).

BlazeFace can also look at tiles of large frames (``tiles``; :mod:`fer_edge.detect.tiled`).
:class:`FaceFinder` crops with the rule the model's spec records for the detector: it is what
``Predictor.analyze()``, the demo and the benchmarks call.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_edge.detect.blazeface import BLAZEFACE, BlazeFaceDetector
from fer_edge.detect.defaults import (
    AUTO,
    DEFAULT_SCORE,
    DETECT_WIDTH,
    DETECTORS,
    HAAR_MIN_SIZE,
    REFINE,
    REFINE_REUSE,
    TILES,
    YUNET_SCORE,
)
from fer_edge.detect.detection import Detection, FaceDetector, check_threshold
from fer_edge.detect.geometry import Box
from fer_edge.detect.haar import HaarFaceDetector
from fer_edge.detect.refine import RefinedDetector
from fer_edge.detect.tiled import TiledDetector, parse_tiles
from fer_edge.detect.yunet import YuNetFaceDetector
from fer_edge.errors import ConfigError
from fer_edge.preprocess import frame_faces
from fer_edge.spec import CropRule, ModelSpec

log = logging.getLogger(__name__)


def detector_name(name_or_path: str | None) -> str:
    """The canonical name of a ``--detector`` value: "auto"/""/None -> :data:`AUTO`; a
    ``.onnx`` path -> "yunet"."""
    n = str(name_or_path or "auto").strip()
    if n.lower() == "auto":
        return AUTO
    if n.lower().endswith(REFINE):
        return detector_name(n[:-len(REFINE)]) + REFINE
    if n.lower().endswith(".onnx"):
        return "yunet"
    return n.lower()


def build_detector(name_or_path: str | None = "auto", score_threshold: float | None = None,
                   min_size: int | None = None, detect_width: int = DETECT_WIDTH,
                   num_threads: int = 1, refine_reuse: int = REFINE_REUSE,
                   tiles: str | int = TILES) -> FaceDetector:
    """A face detector by name.

    Args:
        name_or_path: "auto" (= :data:`AUTO`), "blazeface-full", "blazeface-short", "haar",
            any of those + "+refine" (:class:`RefinedDetector`), or a path to a YuNet
            ``.onnx``.
        score_threshold: minimum face score in (0, 1); default the detector's own (BlazeFace
            :data:`DEFAULT_SCORE` 0.5, YuNet :data:`YUNET_SCORE` 0.7). Haar has no score and
            ignores it.
        min_size: smallest face width in frame pixels; default BlazeFace/YuNet 0 (all), Haar
            :data:`HAAR_MIN_SIZE` (64).
        detect_width: Haar/YuNet work on the frame shrunk to this width (0 = full size;
            default :data:`DETECT_WIDTH`); BlazeFace always letterboxes to its own input.
        num_threads: LiteRT threads for BlazeFace (both passes of "+refine").
        refine_reuse: "+refine" detectors: calls a face's second pass is reused for
            (:class:`RefinedDetector`; default :data:`REFINE_REUSE`, 0: single images).
        tiles: BlazeFace (first pass): "off" (default, :data:`TILES`), "auto" or "2".."6":
            also look at overlapping tiles of large frames (:class:`TiledDetector`). Haar and
            YuNet work at ``detect_width`` instead and ignore it.

    Raises:
        ConfigError: unknown name, threshold outside (0, 1), negative min size.
        ModelFileError: a missing or corrupt model file.
    """
    name = detector_name(name_or_path)
    if score_threshold is not None:
        check_threshold(score_threshold)
    if name.endswith(REFINE) and name != "yunet" + REFINE:
        first = build_detector(name[:-len(REFINE)], score_threshold, min_size, detect_width,
                               num_threads, tiles=tiles)
        return RefinedDetector(first, BlazeFaceDetector("blazeface-short",
                                                        num_threads=num_threads),
                               reuse=refine_reuse)
    if min_size is not None and min_size < 0:
        raise ConfigError(f"minimum face size {min_size} is negative; use 0 (all) or pixels")
    if name in BLAZEFACE:
        det = BlazeFaceDetector(name, DEFAULT_SCORE if score_threshold is None
                                else score_threshold, min_size or 0, num_threads=num_threads)
        return det if parse_tiles(tiles) == 1 else TiledDetector(det, tiles)
    if name == "haar":
        return HaarFaceDetector(detect_width=detect_width,
                                min_size=HAAR_MIN_SIZE if min_size is None else min_size)
    if name == "yunet":
        return YuNetFaceDetector(name_or_path, detect_width=detect_width,
                                 score_threshold=YUNET_SCORE if score_threshold is None
                                 else score_threshold, min_size=min_size or 0)
    raise ConfigError(f"unknown face detector {name_or_path!r}: use "
                      f"{', '.join(DETECTORS)} or a path to a YuNet .onnx")


@dataclass(frozen=True)
class Face:
    """A detected face and its model-ready crop.

    Attributes:
        box: (x, y, w, h) int detector box, frame pixels.
        score: detector confidence.
        keypoints: (K, 2) float32 frame pixels, or None (see :class:`Detection`).
        crop: (s, s) uint8 grey face at the spec's source size (48x48), aligned and framed
            like a FER-2013 face; feed it to ``Predictor.predict``.
    """

    box: Box
    score: float
    keypoints: np.ndarray | None
    crop: np.ndarray


class FaceFinder:
    """detect -> align -> crop, with the crop rule the model spec records for the detector.

    Safe to call from several threads: detection runs under a per-finder lock (detectors
    keep state), cropping does not.

    Args:
        spec: the model's :class:`~fer_edge.spec.ModelSpec` (its ``face_crops``).
        detector: a detector name/path for :func:`build_detector`, or a detector object
            (``detect_faces`` or plain ``detect``); default "auto".
        max_faces: keep at most this many faces (largest first); 0 = all.
        align: rotate faces so the eyes are level (when the rule asks for it and the
            detector has eyes); False gives axis-aligned crops with the same framing.
        **detector_options: passed to :func:`build_detector` (score_threshold, min_size, ...).
    """

    def __init__(self, spec: ModelSpec, detector=None, max_faces: int = 0,
                 align: bool = True, **detector_options):
        if detector is None or isinstance(detector, (str, Path)):
            detector = build_detector(str(detector or "auto"), **detector_options)
        self.detector = detector
        self.spec, self.max_faces = spec, max_faces
        name = getattr(detector, "name", "custom")
        rule = spec.crop_for(name)
        if rule is None:
            log.info("the model records no crop rule for detector %r; using its rule for %r",
                     name, spec.detector)
            rule = spec.crop
        if not align and rule.align:
            rule = CropRule(rule.square, rule.scale, rule.shift_y, rule.source_size, False)
        self.rule = rule
        self._lock = threading.Lock()

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Detections of a frame, largest first, at most ``max_faces``."""
        if hasattr(self.detector, "detect_faces"):
            dets = list(self.detector.detect_faces(frame))
        else:
            dets = [Detection(tuple(float(v) for v in b)) for b in self.detector.detect(frame)]
        dets.sort(key=lambda d: -d.box[2] * d.box[3])
        return dets[:self.max_faces] if self.max_faces else dets

    def crops(self, frame: np.ndarray, boxes, eyes=None) -> np.ndarray:
        """Model-ready crops for given boxes (and per-box (2, 2) eyes or None).

        Returns:
            (N, s, s) uint8 grey.
        """
        return frame_faces(frame, boxes, self.spec, self.rule, eyes)

    def __call__(self, frame: np.ndarray) -> list[Face]:
        """Find, align and crop every face of a frame.

        Args:
            frame: (H, W, 3) uint8 BGR or (H, W) uint8 grey.

        Returns:
            [:class:`Face`] largest first.
        """
        with self._lock:  # detectors keep state (interpreter tensors, refine cache)
            dets = self.detect(frame)
        crops = self.crops(frame, [d.int_box() for d in dets], [d.eyes for d in dets])
        return [Face(d.int_box(), d.score, d.keypoints, c) for d, c in zip(dets, crops)]
