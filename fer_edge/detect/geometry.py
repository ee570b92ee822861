"""Box geometry, in one place: overlap, scaling, and moving a detection. Light tier (numpy).

Used by the detectors, the finder and the demo's tracker. A box is (x, y, w, h) in frame
pixels (top-left corner, width, height) unless its name says ``xyxy`` ((x0, y0, x1, y1)).
Keypoints are (K, 2) float32 (x, y) frame pixels.

``shifted`` and ``moved`` take and return a :class:`~fer_edge.detect.detection.Detection`
(any frozen dataclass with ``box`` and ``keypoints``): they copy it with
:func:`dataclasses.replace`, so this module imports nothing of the package and sits below
every other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]


def intersection(a: tuple, b: tuple) -> float:
    """Area shared by two (x, y, w, h) boxes (0 when they do not overlap)."""
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih


def iou(a: tuple, b: tuple) -> float:
    """Intersection over union of two (x, y, w, h) boxes, in [0, 1]."""
    inter = intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def iou_xyxy(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with many, all (x0, y0, x1, y1).

    Args:
        box: (4,) float.
        boxes: (N, 4) float.

    Returns:
        (N,) float IoUs.
    """
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def scale_for(frame: np.ndarray, detect_width: int) -> float:
    """The factor that shrinks a frame (H, W, ...) to ``detect_width`` pixels wide; 1.0 when
    it is no wider already or ``detect_width`` is 0 (full size)."""
    w = frame.shape[1]
    return 1.0 if detect_width <= 0 or w <= detect_width else detect_width / w


def shifted(d: Any, x0: int, y0: int) -> Any:
    """A detection made on a tile whose top-left corner is (x0, y0), in frame pixels (box
    and keypoints moved by (x0, y0))."""
    x, y, w, h = d.box
    kps = None if d.keypoints is None else (d.keypoints + np.float32([x0, y0])).astype(np.float32)
    return dataclasses.replace(d, box=(x + x0, y + y0, w, h), keypoints=kps)


def moved(d: Any, was: tuple, now: tuple) -> Any:
    """``d`` moved and scaled as a box went from ``was`` to ``now`` (x, y, w, h): its centre
    keeps its offset from the box centre (scaled), its side scales with the box's long side,
    and its keypoints follow (so an eye line keeps its angle)."""
    c0 = np.array([was[0] + was[2] / 2.0, was[1] + was[3] / 2.0])
    c1 = np.array([now[0] + now[2] / 2.0, now[1] + now[3] / 2.0])
    k = max(now[2], now[3]) / max(was[2], was[3], 1e-6)
    x, y, w, h = d.box
    c = c1 + (np.array([x + w / 2.0, y + h / 2.0]) - c0) * k
    kps = None if d.keypoints is None else (
        (c1 + (d.keypoints.astype(np.float64) - c0) * k).astype(np.float32))
    return dataclasses.replace(d, box=(float(c[0] - w * k / 2), float(c[1] - h * k / 2),
                                       float(w * k), float(h * k)), keypoints=kps)
