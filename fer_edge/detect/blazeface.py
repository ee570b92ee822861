"""BlazeFace (MediaPipe's face detector) on LiteRT, decoded in numpy. Light tier.

- ``blazeface-full``: the full-range model (192x192 input, faces up to ~5 m).
- ``blazeface-short``: the short-range model (128x128, faces within ~2 m), faster.

The SSD decoding is here: anchors (:func:`ssd_anchors`), score sigmoid, box and 6 keypoints,
letterbox (:func:`shrink`), weighted non-maximum suppression (:func:`weighted_nms`). The two
model files are MediaPipe's (Apache-2.0), vendored unmodified; see
``assets/blazeface_PROVENANCE.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from fer_edge.detect.defaults import ASSETS, DEFAULT_SCORE
from fer_edge.detect.detection import Detection, FaceDetector, check_frame, check_threshold
from fer_edge.detect.geometry import iou_xyxy
from fer_edge.errors import BackendUnavailableError, ConfigError, ModelFileError
from fer_edge.quiet import native_stderr_quiet

#: overlap (IoU) at which BlazeFace's candidate boxes merge into one face (weighted NMS)
NMS_IOU = 0.3

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


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
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
        group = alive & (iou_xyxy(boxes[i], boxes) > iou_threshold)
        group[i] = True
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(),
                    (keypoints[group] * w[:, :, None]).sum(0) / w.sum(), float(scores[i])))
        alive &= ~group
    return out


class BlazeFaceDetector(FaceDetector):
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
                 min_size: int = 0, iou_threshold: float = NMS_IOU, num_threads: int = 1,
                 model_path: str | Path | None = None):
        if name not in BLAZEFACE:
            raise ConfigError(f"unknown BlazeFace model {name!r}: use "
                              f"{' or '.join(BLAZEFACE)}")
        check_threshold(score_threshold)
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
        check_frame(frame)
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
