"""Face detection, alignment and framing: frame in, faces and model-ready crops out. Light tier.

Detectors (``build_detector(name)``; ``--detector`` in the demo):

- ``blazeface-full``: MediaPipe's BlazeFace full-range model (192x192
  input, faces up to ~5 m), run by LiteRT; the SSD decoding (anchors, score sigmoid, box and
  6 keypoints, letterbox, weighted non-maximum suppression) is :class:`BlazeFaceDetector`.
- ``blazeface-short``: the short-range model (128x128, faces within ~2 m), faster.
- ``haar``: OpenCV's frontal-face Haar cascade on a downscaled grey frame (fer-edge's
  detector before BlazeFace; no keypoints).
- a path to a YuNet ``.onnx`` (``cv2.FaceDetectorYN``; not shipped).
- ``NAME+refine`` (``blazeface-full+refine`` is what ``auto`` means): a second pass per face
  (:class:`RefinedDetector`): the face is cut out at twice its box, turned upright by the
  first pass's eye line, and BlazeFace short-range runs on it; its box and eyes, mapped back
  to the frame, replace the first pass's. BlazeFace's eyes are coarse on a face that is small
  in its input, and its box shrinks as a face tilts; the second pass sees the face large and
  upright.

Every detector has ``detect_faces(frame) -> [Detection]`` (box, score, keypoints in frame
pixels; the first two keypoints are the eyes where the detector has them) and
``detect(frame) -> [(x, y, w, h)]``. :class:`FaceFinder` runs detect -> align -> crop with the
crop rule the model's spec records for that detector: the one function ``analyze()``, the
demo and the benchmarks call.

The two BlazeFace files are MediaPipe's (Apache-2.0), vendored unmodified; see
``assets/blazeface_PROVENANCE.md``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_edge.demo.tracking import iou
from fer_edge.errors import BackendUnavailableError, ConfigError, ModelFileError, SourceError
from fer_edge.preprocess import eye_angle, frame_faces, to_gray
from fer_edge.runtime.quiet import native_stderr_quiet
from fer_edge.spec import CropRule, ModelSpec

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
ASSETS = Path(__file__).resolve().parent / "assets"
#: crop rules and box spread calibrated on FER-2013
#: (``studies/crop_calibration/calibrate_crops.py``)
CALIBRATION_FILE = ASSETS / "face_crops.json"
#: the default detector (``--detector auto``): the best one measured in benchmarks/README.md
AUTO = "blazeface-full+refine"
DETECTORS = ("auto", "blazeface-full", "blazeface-short", "haar", "blazeface-full+refine",
             "blazeface-short+refine", "haar+refine")
#: suffix of a detector name that adds the second, upright pass (:class:`RefinedDetector`)
REFINE = "+refine"
#: default minimum face score of BlazeFace (MediaPipe's own threshold for these models)
DEFAULT_SCORE = 0.5


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
        return tuple(int(round(v)) for v in self.box)


def _scale_for(frame: np.ndarray, detect_width: int) -> float:
    w = frame.shape[1]
    return 1.0 if detect_width <= 0 or w <= detect_width else detect_width / w


class _Boxes:
    """``detect()`` from ``detect_faces()``: the old box-only interface."""

    name = "detector"

    def detect_faces(self, frame: np.ndarray) -> list[Detection]:
        raise NotImplementedError

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Faces of a frame as [(x, y, w, h), ...] ints in frame pixels, largest first.

        Args:
            frame: (H, W, 3) uint8 BGR or (H, W) uint8 grey.
        """
        return [d.int_box() for d in self.detect_faces(frame)]


#: uint8 -> float32 in [-1, 1] (BlazeFace's input range), a cv2.LUT table: one pass instead of
#: astype, multiply and subtract (0.1 vs 0.8 ms on a 192x192x3 input at 1 thread)
_TO_UNIT = (np.arange(256, dtype=np.float32) * (2 / 255.0) - 1.0).reshape(1, 256)


def shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` resized to ``size`` (width, height): area averaging when shrinking, bilinear
    when enlarging.

    OpenCV's INTER_AREA is fast only for an integer factor that divides the image (640x360 to
    192x108 takes ~1.4 ms at 1 thread, 640x360 to 320x180 ~0.1 ms). For any other shrink by a
    factor f >= 1.5 the frame is box-filtered over the odd number of pixels nearest f
    (3 for 640 to 192), then resized bilinearly: 0.4 ms, about half a grey level from
    INTER_AREA, and BlazeFace full range finds the same pasted PrivateTest faces (recall
    41.6 vs 41.7 % on 1,500; a 2x area step then bilinear instead lost 1.3 pp). Checked in
    ``tests/test_faces.py``.

    Args:
        img: (H, W) or (H, W, C) uint8.
        size: (width, height) of the result, each >= 1.
    """
    h, w = img.shape[:2]
    nw, nh = size
    if nw >= w and nh >= h:
        return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if w % nw == 0 and h % nh == 0 and w // nw == h // nh:
        return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)  # OpenCV's fast path
    f = min(w / nw, h / nh)
    if f < 1.5:
        return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    k = 2 * int(f / 2) + 1  # odd, so the box is centred (an even one shifts half a pixel)
    return cv2.resize(cv2.blur(img, (k, k)), (nw, nh), interpolation=cv2.INTER_LINEAR)


# --- BlazeFace ----------------------------------------------------------------------------
#: MediaPipe's SsdAnchorsCalculator options (face_detection_{short,full}_range.pbtxt) that
#: matter for these models: input side, strides, interpolated scale aspect ratio (an extra
#: anchor per layer when > 0). fixed_anchor_size is true for both, so an anchor is a centre.
BLAZEFACE = {
    "blazeface-short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0),
    "blazeface-full": ("face_detection_full_range.tflite", 192, (4,), 0.0),
}


def ssd_anchors(input_size: int, strides: tuple[int, ...], interpolated: float) -> np.ndarray:
    """Anchor centres in MediaPipe's order.

    Consecutive layers with the same stride share one feature map; each layer adds one anchor
    per cell for its aspect ratio (1.0) and one more when ``interpolated`` > 0.

    Returns:
        (A, 2) float32 (x, y) centres in [0, 1] of the square input.
    """
    out = []
    i = 0
    while i < len(strides):
        stride, per_cell = strides[i], 0
        while i < len(strides) and strides[i] == stride:
            per_cell += 1 + (interpolated > 0)
            i += 1
        fm = math.ceil(input_size / stride)
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm,
                             indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def _iou_xyxy(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = 0.3) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: each kept face is the score-weighted
    mean of the candidates overlapping the best one by more than ``iou_threshold``.

    Args:
        boxes: (N, 4) float (x0, y0, x1, y1).
        keypoints: (N, K, 2) float.
        scores: (N,) float in [0, 1].

    Returns:
        [(box (4,), keypoints (K, 2), score), ...] best first, one per face.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (_iou_xyxy(boxes[i], boxes) > iou_threshold)
        group[i] = True
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(),
                    (keypoints[group] * w[:, :, None]).sum(0) / w.sum(), float(scores[i])))
        alive &= ~group
    return out


class BlazeFaceDetector(_Boxes):
    """MediaPipe BlazeFace (short or full range) on LiteRT, decoded in numpy.

    The frame is letterboxed (aspect kept, zero padding) to the square input, converted
    BGR -> RGB and scaled to [-1, 1]; boxes and keypoints come back in frame pixels.

    Args:
        name: "blazeface-full" or "blazeface-short".
        score_threshold: minimum face score, in (0, 1).
        min_size: drop faces narrower than this many frame pixels (0 = keep all).
        iou_threshold: overlap at which candidates merge into one face (weighted NMS).
        num_threads: LiteRT threads.
        model_path: the .tflite file; default the vendored one.
    """

    def __init__(self, name: str = "blazeface-full", score_threshold: float = DEFAULT_SCORE,
                 min_size: int = 0, iou_threshold: float = 0.3, num_threads: int = 1,
                 model_path: str | Path | None = None):
        if name not in BLAZEFACE:
            raise ConfigError(f"unknown BlazeFace model {name!r}: use "
                              f"{' or '.join(BLAZEFACE)}")
        _check_threshold(score_threshold)
        file, size, strides, interp = BLAZEFACE[name]
        path = Path(model_path) if model_path else ASSETS / file
        if not path.is_file():
            raise ModelFileError(f"{path}: BlazeFace model missing; reinstall fer-edge (or "
                                 f"restore it with demo/vendor_blazeface.py)")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise BackendUnavailableError("BlazeFace needs LiteRT: pip install ai-edge-litert "
                                          "(or use --detector haar)") from None
        try:
            with native_stderr_quiet():
                self._interp = Interpreter(model_path=str(path),
                                           num_threads=max(1, num_threads))
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: not a loadable TFLite model "
                                 f"({str(exc).splitlines()[0][:100]}); restore it with "
                                 "demo/vendor_blazeface.py") from None
        inp = self._interp.get_input_details()[0]
        outs = {int(d["shape"][-1]): d for d in self._interp.get_output_details()}
        self.anchors = ssd_anchors(size, strides, interp)
        a = len(self.anchors)
        if (tuple(inp["shape"]) != (1, size, size, 3) or set(outs) != {16, 1}
                or any(int(d["shape"][1]) != a for d in outs.values())):
            raise ModelFileError(f"{path}: not the {name} model (input {tuple(inp['shape'])}, "
                                 f"outputs {[tuple(d['shape']) for d in outs.values()]}, "
                                 f"expected {a} anchors)")
        self.name, self.size, self.num_threads = name, size, max(1, num_threads)
        self._in, self._reg, self._cls = inp["index"], outs[16]["index"], outs[1]["index"]
        self.score_threshold, self.min_size = score_threshold, min_size
        self.iou_threshold = iou_threshold

    def _letterbox(self, frame: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        h, w = frame.shape[:2]
        s = self.size / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        small = shrink(frame, (nw, nh))
        px, py = (self.size - nw) // 2, (self.size - nh) // 2
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        canvas[py:py + nh, px:px + nw] = small
        return canvas, s, px, py

    def raw(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int, int]:
        """Run the model on a frame: (A, 16) float32 regressors, (A,) raw scores, and the
        letterbox (scale, pad x, pad y)."""
        bgr = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if bgr.shape[2] == 4:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_BGRA2BGR)
        canvas, s, px, py = self._letterbox(bgr)
        x = cv2.LUT(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB), _TO_UNIT)  # [-1, 1] float32 RGB
        self._interp.set_tensor(self._in, x[None])
        self._interp.invoke()
        reg = self._interp.get_tensor(self._reg)[0]
        cls = self._interp.get_tensor(self._cls)[0, :, 0]
        return reg, cls, s, px, py

    def detect_faces(self, frame: np.ndarray) -> list[Detection]:
        """Faces of a frame, best score first.

        Args:
            frame: (H, W, 3) uint8 BGR (or (H, W) grey, (H, W, 4) BGRA).

        Returns:
            [:class:`Detection`] with 6 keypoints each, in frame pixels.
        """
        _check_frame(frame)
        reg, cls, s, px, py = self.raw(frame)
        scores = 1.0 / (1.0 + np.exp(-np.clip(cls, -80, 80)))
        keep = np.flatnonzero(scores >= self.score_threshold)
        if not len(keep):
            return []
        r = reg[keep].reshape(-1, 8, 2) / self.size          # input-normalised units
        anc = self.anchors[keep]
        centre = r[:, 0] + anc
        half = r[:, 1] / 2
        boxes = np.concatenate([centre - half, centre + half], 1)
        kps = r[:, 2:] + anc[:, None, :]
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        found = weighted_nms(boxes[valid], kps[valid], scores[keep][valid], self.iou_threshold)
        out = []
        off = np.array([px, py], np.float32)
        for b, k, sc in found:
            b = (b.reshape(2, 2) * self.size - off) / s
            k = ((k * self.size - off) / s).astype(np.float32)
            w, h = b[1] - b[0]
            if w < max(1, self.min_size):
                continue
            out.append(Detection((float(b[0, 0]), float(b[0, 1]), float(w), float(h)), sc, k))
        return out


# --- tiles: small faces in large frames -----------------------------------------------------
#: ``--detect-tiles auto``: frames whose long side is at least this many pixels are also
#: looked at in tiles (BlazeFace sees any frame at 192 px, so a 1920-px frame's 60-px face
#: shrinks to 6 px)
TILE_MIN_SIDE = 960
#: auto: tiles per side = round(long side / this), so each tile is about a 640-px frame
TILE_SIDE = 640
#: most tiles per side (``--detect-tiles N`` takes 2..MAX_TILES)
MAX_TILES = 6
#: each tile reaches this fraction of its grid cell beyond the cell on every inner side, so a
#: face up to 2 x this x the cell wide, centred in the cell, is whole in the tile
TILE_OVERLAP = 0.15
#: auto: tiles are skipped when every face the full frame shows is at least this fraction of
#: a grid cell wide (one person close to a 1080p camera costs one pass, as before)
TILE_SKIP_FACE = 0.5
#: overlap above which two boxes (full frame and tiles) are one face (IoU, or the smaller box's
#: share of the intersection)
TILE_NMS_IOU, TILE_NMS_INSIDE = 0.3, 0.6


def parse_tiles(value) -> int | None:
    """A ``--detect-tiles`` value: "auto" -> None (decided per frame), "off" -> 1 (the full
    frame only), "N" -> N (N x N tiles, 2..MAX_TILES, on every frame).

    Raises:
        ConfigError: anything else.
    """
    text = str(value).strip().lower()
    if text == "auto":
        return None
    if text == "off":
        return 1
    if text.isdigit() and 1 <= int(text) <= MAX_TILES:
        return int(text)
    raise ConfigError(f"--detect-tiles {value!r}: use auto, off, or a number of tiles per side "
                      f"from 2 to {MAX_TILES}")


def tile_grid(shape: tuple[int, ...], n: int) -> list[tuple[tuple[int, int, int, int],
                                                             tuple[float, float, float, float]]]:
    """The ``n`` x ``n`` overlapping tiles of a frame.

    Args:
        shape: the frame's shape, (H, W, ...).
        n: tiles per side.

    Returns:
        [((x0, y0, x1, y1) tile in frame pixels, (cx0, cy0, cx1, cy1) its grid cell)], row by
        row; the cells cover the frame without overlap, each tile is its cell plus
        :data:`TILE_OVERLAP` of a cell on every side (clipped to the frame).
    """
    h, w = shape[:2]
    xs, ys = np.linspace(0, w, n + 1), np.linspace(0, h, n + 1)
    ox, oy = TILE_OVERLAP * w / n, TILE_OVERLAP * h / n
    out = []
    for r in range(n):
        for c in range(n):
            tile = (int(max(0, xs[c] - ox)), int(max(0, ys[r] - oy)),
                    int(min(w, np.ceil(xs[c + 1] + ox))), int(min(h, np.ceil(ys[r + 1] + oy))))
            out.append((tile, (xs[c], ys[r], xs[c + 1], ys[r + 1])))
    return out


def merge_faces(dets: list[Detection]) -> list[Detection]:
    """One detection per face from overlapping candidates (full frame and tiles, all in frame
    pixels): best score first, a candidate is dropped when it overlaps a kept one by IoU >
    :data:`TILE_NMS_IOU` or lies mostly (:data:`TILE_NMS_INSIDE` of its area) inside it."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        x, y, w, h = d.box
        dup = False
        for k in kept:
            kx, ky, kw, kh = k.box
            iw = max(0.0, min(x + w, kx + kw) - max(x, kx))
            ih = max(0.0, min(y + h, ky + kh) - max(y, ky))
            inter = iw * ih
            small = max(min(w * h, kw * kh), 1e-9)
            if iou(d.box, k.box) > TILE_NMS_IOU or inter / small > TILE_NMS_INSIDE:
                dup = True
                break
        if not dup:
            kept.append(d)
    return kept


def _shifted(d: Detection, x0: int, y0: int) -> Detection:
    """A detection made on a tile whose top-left corner is (x0, y0), in frame pixels."""
    x, y, w, h = d.box
    kps = None if d.keypoints is None else (d.keypoints + np.float32([x0, y0])).astype(np.float32)
    return Detection((x + x0, y + y0, w, h), d.score, kps)


class TiledDetector(_Boxes):
    """A detector run on the whole frame and on overlapping tiles of it, for small faces in
    large frames (a classroom or shop camera; BlazeFace letterboxes any frame to 192 px).

    The frame is cut into ``n`` x ``n`` grid cells; each tile is its cell plus
    :data:`TILE_OVERLAP` of a cell around it. A face found in a tile is kept only when its
    centre lies in the tile's own cell (a face cut by a tile edge is whole, and centred in its
    cell, in the neighbouring tile), moved to frame pixels (box and keypoints), and merged
    with the full frame's faces by :func:`merge_faces`.

    ``tiles`` "auto": ``n`` = round(long side / :data:`TILE_SIDE`) for frames whose long side
    is at least :data:`TILE_MIN_SIDE` (so 640x480 is never tiled: 1 pass, as before), and no
    tiles when the full frame found faces that are all at least :data:`TILE_SKIP_FACE` of a
    cell wide. "off": the full frame only. "N": N x N tiles on every frame.
    ``tile_frames`` counts the frames on which tiles ran.

    Args:
        inner: the detector to run (``detect_faces``); its ``name`` names this one, so the
            crop rule calibrated for it applies.
        tiles: "auto", "off" or "2".."6" (``--detect-tiles``).
    """

    def __init__(self, inner: _Boxes, tiles: str | int = "auto"):
        self.inner, self.tiles = inner, parse_tiles(tiles)
        self.name = getattr(inner, "name", "custom")
        self.tile_frames = 0

    def grid(self, shape: tuple[int, ...], found: list[Detection]) -> int:
        """Tiles per side for a frame of this shape, given the full frame's faces."""
        if self.tiles is not None:
            return self.tiles
        h, w = shape[:2]
        if max(h, w) < TILE_MIN_SIDE:
            return 1
        n = min(MAX_TILES, max(2, round(max(h, w) / TILE_SIDE)))
        cell = min(w, h) / n
        if found and min(max(d.box[2], d.box[3]) for d in found) >= TILE_SKIP_FACE * cell:
            return 1
        return n

    def detect_faces(self, frame: np.ndarray) -> list[Detection]:
        """Same contract as :meth:`BlazeFaceDetector.detect_faces` (BGR or grey frame)."""
        found = list(self.inner.detect_faces(frame))
        n = self.grid(frame.shape, found)
        if n <= 1:
            return found
        self.tile_frames += 1
        for (x0, y0, x1, y1), (cx0, cy0, cx1, cy1) in tile_grid(frame.shape, n):
            for d in self.inner.detect_faces(frame[y0:y1, x0:x1]):
                cx, cy = x0 + d.box[0] + d.box[2] / 2, y0 + d.box[1] + d.box[3] / 2
                if cx0 <= cx < cx1 and cy0 <= cy < cy1:
                    found.append(_shifted(d, x0, y0))
        return merge_faces(found)


# --- OpenCV detectors -----------------------------------------------------------------------

class HaarFaceDetector(_Boxes):
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

    def detect_faces(self, frame: np.ndarray) -> list[Detection]:
        """Faces of a frame, largest first, no keypoints (score 1.0).

        Args:
            frame: (H, W, 3) uint8 BGR or (H, W) uint8 grey.
        """
        _check_frame(frame)
        gray = to_gray(frame)
        s = _scale_for(gray, self.detect_width)
        small = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else gray
        m = max(12, int(self.min_size * s))
        found = self._clf.detectMultiScale(small, scaleFactor=self.scale_factor,
                                           minNeighbors=self.min_neighbors, minSize=(m, m))
        boxes = [tuple(float(v) / s for v in b) for b in np.asarray(found).reshape(-1, 4)]
        return [Detection(b) for b in sorted(boxes, key=lambda b: -b[2] * b[3])]


class YuNetFaceDetector(_Boxes):
    """YuNet through ``cv2.FaceDetectorYN`` from a local ``.onnx`` file (5 keypoints)."""

    name = "yunet"

    def __init__(self, onnx_path: str | Path, detect_width: int = 320,
                 score_threshold: float = 0.7, min_size: int = 0):
        p = Path(onnx_path)
        if not p.is_file():
            raise ModelFileError(f"{p}: YuNet model not found (pass the path of "
                                 "face_detection_yunet_*.onnx, or use --detector auto)")
        _check_threshold(score_threshold)
        try:
            self._det = cv2.FaceDetectorYN.create(str(p), "", (320, 240), score_threshold)
        except cv2.error as exc:
            raise ModelFileError(f"{p}: not a YuNet model OpenCV can load "
                                 f"({str(exc).strip().splitlines()[-1][:100]})") from None
        self.detect_width, self.min_size = detect_width, min_size

    def detect_faces(self, frame: np.ndarray) -> list[Detection]:
        """Same contract as :meth:`BlazeFaceDetector.detect_faces` (BGR or grey frame)."""
        _check_frame(frame)
        bgr = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        s = _scale_for(bgr, self.detect_width)
        small = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else bgr
        self._det.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self._det.detect(small)
        if faces is None:
            return []
        out = [Detection(tuple(float(v) / s for v in f[:4]), float(f[14]),
                         (f[4:14].reshape(5, 2) / s).astype(np.float32)) for f in faces]
        out = [d for d in out if d.box[2] >= self.min_size]
        return sorted(out, key=lambda d: -d.box[2] * d.box[3])


# --- second pass: each face again, large and upright ---------------------------------------

class RefinedDetector(_Boxes):
    """A detector plus a second BlazeFace pass on each face it finds.

    For each first-pass face: a square of ``context`` x its box side around its centre is cut
    out, rotated so the first pass's eye line is level (unrotated when it has no eyes), and
    resampled to the refiner's input (128x128 for the short-range model). The refiner's
    detection nearest the middle of that patch gives the face's centre, side and eye line in
    the upright patch; they are mapped back to the frame. The result's box is the upright
    face square (centre and side, axis-aligned in the frame) and its keypoints are in frame
    pixels, so the eye line carries the first pass's angle plus the second's correction.
    A face the refiner misses keeps its first-pass detection (``misses`` counts them).

    On video (``reuse`` > 0) a face's second pass is reused for up to ``reuse`` later calls:
    a first-pass box that overlaps the box a second pass was made for (IoU >= 0.5) gets that
    result moved and scaled with it (the eye line's angle kept) instead of a new pass; then
    the pass is made again. The demo refreshes every face's second pass every third detection
    round this way, a third of the cost. With the default 0 every call refines every face,
    as single images need.

    Args:
        first: any detector with ``detect_faces`` (its ``name`` + "+refine" names this one).
        refiner: a :class:`BlazeFaceDetector` (default: short range, threshold 0.5).
        context: patch side / first-pass box side.
        reuse: calls a second pass is reused for (0 = none; for consecutive video frames).
    """

    def __init__(self, first: _Boxes, refiner: BlazeFaceDetector | None = None,
                 context: float = 2.0, reuse: int = 0):
        if context < 1.2:
            raise ConfigError(f"refine context {context} must be >= 1.2 (patch side / box side)")
        if reuse < 0:
            raise ConfigError(f"refine reuse {reuse} is negative; use 0 (refine every call) "
                              "or the number of calls to reuse a second pass for")
        self.first = first
        self.refiner = refiner or BlazeFaceDetector("blazeface-short")
        self.context, self.reuse = context, reuse
        self.name = getattr(first, "name", "custom") + REFINE
        self.misses = self.passes = 0
        #: (first-pass box, its second-pass Detection, calls since that pass)
        self._cache: list[tuple[tuple, Detection, int]] = []

    def detect_faces(self, frame: np.ndarray) -> list[Detection]:
        """Same contract as :meth:`BlazeFaceDetector.detect_faces` (BGR or grey frame)."""
        out, cache = [], []
        for d in self.first.detect_faces(frame):
            old = max(self._cache, key=lambda c: iou(c[0], d.box), default=None)
            if old is not None and old[2] < self.reuse and iou(old[0], d.box) >= 0.5:
                self._cache.remove(old)
                r = _moved(old[1], old[0], d.box)
                cache.append((d.box, r, old[2] + 1))
                out.append(r)
                continue
            r = self.refine(frame, d)
            self.passes += 1
            if r is None:
                self.misses += 1
            elif self.reuse:
                cache.append((d.box, r, 0))
            out.append(r or d)
        self._cache = cache
        return out

    def refine(self, frame: np.ndarray, det: Detection) -> Detection | None:
        """The second pass for one first-pass detection, or None when the refiner finds no
        face near the middle of the patch."""
        x, y, w, h = det.box
        cx, cy = x + w / 2.0, y + h / 2.0
        side = max(w, h) * self.context
        angle = eye_angle(det.eyes) if det.eyes is not None else 0.0
        n = self.refiner.size
        sc = n / max(side, 1.0)
        m = cv2.getRotationMatrix2D((cx, cy), angle, sc)  # the face upright, n / side larger
        m[:, 2] += (n / 2.0 - cx, n / 2.0 - cy)
        patch = cv2.warpAffine(frame, m, (n, n), flags=cv2.INTER_AREA if sc < 1 else
                               cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        found = [f for f in self.refiner.detect_faces(patch) if f.keypoints is not None]
        if not found:
            return None

        def off_centre(f: Detection) -> float:
            bx, by, bw, bh = f.box
            return math.hypot(bx + bw / 2.0 - n / 2.0, by + bh / 2.0 - n / 2.0)

        best = min(found, key=off_centre)
        if off_centre(best) > n / 4.0:  # a neighbour, not this face
            return None
        inv = cv2.invertAffineTransform(m)
        bx, by, bw, bh = best.box
        ncx, ncy = inv @ np.array([bx + bw / 2.0, by + bh / 2.0, 1.0])
        nside = max(bw, bh) / sc
        kps = best.keypoints.astype(np.float64)
        kps = (np.c_[kps, np.ones(len(kps))] @ inv.T).astype(np.float32)
        return Detection((float(ncx - nside / 2.0), float(ncy - nside / 2.0), float(nside),
                          float(nside)), det.score, kps)


def _moved(det: Detection, was: tuple, now: tuple) -> Detection:
    """``det`` moved and scaled as a box went from ``was`` to ``now`` (x, y, w, h)."""
    c0 = np.array([was[0] + was[2] / 2.0, was[1] + was[3] / 2.0])
    c1 = np.array([now[0] + now[2] / 2.0, now[1] + now[3] / 2.0])
    k = max(now[2], now[3]) / max(was[2], was[3], 1e-6)
    x, y, w, h = det.box
    c = c1 + (np.array([x + w / 2.0, y + h / 2.0]) - c0) * k
    kps = None if det.keypoints is None else (
        (c1 + (det.keypoints.astype(np.float64) - c0) * k).astype(np.float32))
    return Detection((float(c[0] - w * k / 2), float(c[1] - h * k / 2), float(w * k),
                      float(h * k)), det.score, kps)


# --- building one ---------------------------------------------------------------------------

def _check_threshold(t: float) -> None:
    if not 0 < t < 1:
        raise ConfigError(f"face score threshold {t} is outside (0, 1); use e.g. 0.5")


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3) \
            or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)) or min(frame.shape[:2]) < 1:
        raise SourceError(f"a frame must be an (H, W, 3) uint8 BGR or (H, W) uint8 array, got "
                          f"{getattr(frame, 'shape', type(frame))} "
                          f"{getattr(frame, 'dtype', '')}")


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
                   min_size: int | None = None, detect_width: int = 320,
                   num_threads: int = 1, refine_reuse: int = 0,
                   tiles: str | int = "off") -> _Boxes:
    """A face detector by name.

    Args:
        name_or_path: "auto" (= :data:`AUTO`), "blazeface-full", "blazeface-short", "haar",
            any of those + "+refine" (:class:`RefinedDetector`), or a path to a YuNet
            ``.onnx``.
        score_threshold: minimum face score in (0, 1); default the detector's own (BlazeFace
            0.5, YuNet 0.7). Haar has no score and ignores it.
        min_size: smallest face width in frame pixels; default BlazeFace/YuNet 0 (all), Haar
            64 (its historical demo default).
        detect_width: Haar/YuNet work on the frame shrunk to this width (0 = full size);
            BlazeFace always letterboxes to its own input.
        num_threads: LiteRT threads for BlazeFace (both passes of "+refine").
        refine_reuse: "+refine" detectors: calls a face's second pass is reused for
            (:class:`RefinedDetector`; 0 for single images).
        tiles: BlazeFace (first pass): "off" (default), "auto" or "2".."6": also look at
            overlapping tiles of large frames (:class:`TiledDetector`). Haar and YuNet work
            at ``detect_width`` instead and ignore it.

    Raises:
        ConfigError: unknown name, threshold outside (0, 1), negative min size.
        ModelFileError: a missing or corrupt model file.
    """
    name = detector_name(name_or_path)
    if score_threshold is not None:
        _check_threshold(score_threshold)
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
                                min_size=64 if min_size is None else min_size)
    if name == "yunet":
        return YuNetFaceDetector(name_or_path, detect_width=detect_width,
                                 score_threshold=0.7 if score_threshold is None
                                 else score_threshold, min_size=min_size or 0)
    raise ConfigError(f"unknown face detector {name_or_path!r}: use "
                      f"{', '.join(DETECTORS)} or a path to a YuNet .onnx")


# --- calibration: crop rules and box spread --------------------------------------------------

@dataclass(frozen=True)
class BoxSpread:
    """How a detector's box sits on a FER-2013-framed face, measured on pasted training faces
    (``studies/crop_calibration/calibrate_crops.py``), in units of the true face side.

    Use it to jitter training crops the way a detector will (crop-jitter augmentation).

    Attributes:
        detector: detector name.
        n: faces measured.
        dx, dy: (median, std) of (box centre - face centre) / face side, x right, y down.
        size: (median, std) of box side (max(w, h)) / face side.
        angle_deg: (median, std) of the eye-line angle error in degrees (0, 0 without eyes).
    """

    detector: str
    n: int
    dx: tuple[float, float]
    dy: tuple[float, float]
    size: tuple[float, float]
    angle_deg: tuple[float, float] = (0.0, 0.0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` jitters (dx, dy, size, angle_deg) as an (n, 4) float32 array, Gaussian
        around the medians with the measured std (what a detector box does to a face)."""
        mu = np.array([self.dx[0], self.dy[0], self.size[0], self.angle_deg[0]])
        sd = np.array([self.dx[1], self.dy[1], self.size[1], self.angle_deg[1]])
        return (mu + sd * rng.standard_normal((n, 4))).astype(np.float32)


def _calibration() -> dict:
    if not CALIBRATION_FILE.is_file():
        return {}
    return json.loads(CALIBRATION_FILE.read_text())


def calibrated_crops() -> dict[str, CropRule]:
    """Crop rule per detector name, calibrated on FER-2013 (empty if never calibrated)."""
    return {k: CropRule(**v["crop"]) for k, v in _calibration().get("detectors", {}).items()}


def box_spread(detector: str = "auto") -> BoxSpread:
    """The measured box spread of a detector ("auto", "blazeface-full", ...; see
    :class:`BoxSpread`).

    Raises:
        ConfigError: no calibration for that detector.
    """
    name = detector_name(detector)
    d = _calibration().get("detectors", {}).get(name)
    if d is None:
        raise ConfigError(f"no box spread measured for detector {name!r}; run "
                          "studies/crop_calibration/calibrate_crops.py")
    s = d["spread"]
    return BoxSpread(name, int(s["n"]), tuple(s["dx"]), tuple(s["dy"]), tuple(s["size"]),
                     tuple(s.get("angle_deg", (0.0, 0.0))))


def crop_fields() -> dict:
    """The crop fields of a new model spec: every calibrated crop rule in ``face_crops``, the
    default detector (:data:`AUTO`) as ``detector`` and its rule as ``crop``. ``fer-edge
    train`` records them in the run's spec; every build copies them, and the runtime reads
    them from the build alone.

    Raises:
        ConfigError: this install has no calibration for the default detector.
    """
    crops = calibrated_crops()
    if AUTO not in crops:
        raise ConfigError(f"no crop calibration for {AUTO} in {CALIBRATION_FILE}; reinstall "
                          "fer-edge")
    return {"detector": AUTO, "crop": crops[AUTO], "face_crops": crops}


# --- the product function: detect -> align -> crop -------------------------------------------

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
