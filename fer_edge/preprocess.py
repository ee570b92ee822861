"""The one preprocessing path from a camera frame or dataset face to model input. Light tier.

Used by training (``resize_faces`` builds the resized cache, ``normalize`` is mirrored in the
tf.data graph with the same spec constants), calibration, evaluation and the demo.

Pipeline, driven by the :class:`~fer_edge.spec.ModelSpec`:

1. ``crop_face``: detector box -> square grey crop (crop rule), padded by edge replication;
   with ``rule.align`` and the detector's eye keypoints, rotated so the eyes are level.
2. ``to_source``: crop -> ``source_size`` x ``source_size`` uint8 grey (INTER_AREA), the
   resolution of FER-2013 faces. A 48x48 dataset face passes through unchanged.
3. ``resize_faces``: -> ``input_size`` x ``input_size`` float32 grey in [0, 255] (INTER_LINEAR
   on float input, so no uint8 rounding).
4. ``normalize``: ``pixel * norm_scale + norm_offset`` (to [-1, 1] for InceptionV3; one value
   or one per channel) and repeat to ``channels``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fer_edge.spec import CropRule, ModelSpec


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Convert a frame to grey.

    Args:
        frame: (H, W, 3) uint8 **BGR** (OpenCV order), (H, W, 4) BGRA, or (H, W) uint8 grey.

    Returns:
        (H, W) uint8 grey.
    """
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def crop_box(box_xywh: Sequence[float], rule: CropRule) -> tuple[int, int, int, int]:
    """Apply the crop rule to a detector box.

    Args:
        box_xywh: (x, y, w, h) in frame pixels.
        rule: the spec's crop rule.

    Returns:
        (x, y, w, h) ints of the crop, possibly reaching outside the frame.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    cx, cy = x + w / 2.0, y + h / 2.0
    if rule.square:
        w = h = max(w, h)
    w, h = w * rule.scale, h * rule.scale
    cy += rule.shift_y * h
    return (int(round(cx - w / 2)), int(round(cy - h / 2)), max(1, int(round(w))),
            max(1, int(round(h))))


def eye_angle(eyes: np.ndarray | Sequence[Sequence[float]]) -> float:
    """In-plane angle of the line from the first eye keypoint to the second.

    Args:
        eyes: (2, 2) float (x, y) frame pixels: the subject's right eye (on the image's left
            for a frontal face) then the left eye, as BlazeFace and YuNet order them.

    Returns:
        Degrees, positive when the face is turned clockwise on screen (its left eye lower).
    """
    e = np.asarray(eyes, np.float64)
    return float(np.degrees(np.arctan2(e[1, 1] - e[0, 1], e[1, 0] - e[0, 0])))


def crop_face(gray: np.ndarray, box_xywh: Sequence[float], rule: CropRule,
              eyes: np.ndarray | None = None) -> np.ndarray:
    """Cut the face crop out of a grey frame; parts outside the frame replicate the edge.

    Args:
        gray: (H, W) uint8 grey frame.
        box_xywh: detector box (x, y, w, h) in frame pixels.
        rule: crop rule from the spec.
        eyes: optional (2, 2) eye keypoints (see :func:`eye_angle`). Used only when
            ``rule.align``: the square crop is rotated about the box centre so the eyes are
            level, and ``shift_y`` moves the centre along the face's own vertical.

    Returns:
        (h, w) uint8 grey crop (square when aligned).
    """
    if rule.align and eyes is not None:
        return _aligned_crop(gray, box_xywh, rule, eye_angle(eyes))
    x, y, w, h = crop_box(box_xywh, rule)
    H, W = gray.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((h, w), np.uint8)
    crop = gray[y0:y1, x0:x1]
    pads = (y0 - y, (y + h) - y1, x0 - x, (x + w) - x1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_REPLICATE)
    return crop


def _aligned_crop(gray: np.ndarray, box_xywh: Sequence[float], rule: CropRule,
                  angle_deg: float) -> np.ndarray:
    x, y, w, h = (float(v) for v in box_xywh)
    side = max(w, h) * rule.scale
    t = np.radians(angle_deg)
    # the face's "down" in frame coordinates (y grows downwards)
    cx = x + w / 2.0 - np.sin(t) * rule.shift_y * side
    cy = y + h / 2.0 + np.cos(t) * rule.shift_y * side
    n = max(1, int(round(side)))
    m = cv2.getRotationMatrix2D((cx, cy), angle_deg, 1.0)
    m[:, 2] += (n / 2.0 - cx, n / 2.0 - cy)
    return cv2.warpAffine(gray, m, (n, n), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def to_source(face_gray: np.ndarray, size: int) -> np.ndarray:
    """Bring a grey face crop to the dataset resolution.

    Args:
        face_gray: (h, w) uint8 grey crop.
        size: target side (the spec's ``crop.source_size``, 48 for FER-2013).

    Returns:
        (size, size) uint8 grey. Unchanged if already that size.
    """
    if face_gray.shape[:2] == (size, size):
        return face_gray
    interp = cv2.INTER_AREA if min(face_gray.shape[:2]) >= size else cv2.INTER_LINEAR
    return cv2.resize(face_gray, (size, size), interpolation=interp)


def resize_faces(faces_gray: np.ndarray, input_size: int) -> np.ndarray:
    """Resize source-resolution faces to the model input, as float grey.

    Args:
        faces_gray: (N, s, s) uint8 grey faces at source resolution.
        input_size: model input side.

    Returns:
        (N, input_size, input_size) float32 grey in [0, 255].
    """
    faces_gray = np.asarray(faces_gray)
    out = np.empty((len(faces_gray), input_size, input_size), np.float32)
    for i, face in enumerate(faces_gray):
        out[i] = cv2.resize(face.astype(np.float32), (input_size, input_size),
                            interpolation=cv2.INTER_LINEAR)
    return out


def normalize(resized: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Scale resized grey faces to the model's float range and repeat to its channels.

    Args:
        resized: (N, S, S) float32 grey in [0, 255] from :func:`resize_faces`.
        spec: the model spec (``norm_scale``, ``norm_offset``, ``channels``).

    Returns:
        (N, S, S, C) float32 model input (NHWC), [-1, 1] for the default spec.
    """
    if isinstance(spec.norm_scale, tuple) or isinstance(spec.norm_offset, tuple):
        x = np.repeat(resized.astype(np.float32)[..., None], spec.channels, axis=-1)
        return (x * np.asarray(spec.norm_scale, np.float32)
                + np.asarray(spec.norm_offset, np.float32))
    x = resized.astype(np.float32) * np.float32(spec.norm_scale) + np.float32(spec.norm_offset)
    return np.repeat(x[..., None], spec.channels, axis=-1)


def to_model_input(faces_gray: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Dataset-resolution faces -> float model input. The function every stage calls.

    Args:
        faces_gray: (N, h, w) uint8 grey faces (any size; brought to ``crop.source_size`` first).
        spec: the model spec.

    Returns:
        (N, S, S, C) float32 NHWC model input.
    """
    src = spec.crop.source_size
    faces = np.stack([to_source(np.asarray(f), src) for f in faces_gray]) if len(faces_gray) else (
        np.zeros((0, src, src), np.uint8))
    return normalize(resize_faces(faces, spec.input_size), spec)


def frame_faces(frame: np.ndarray, boxes_xywh: Sequence[Sequence[float]],
                spec: ModelSpec, rule: CropRule | None = None,
                eyes: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Crop every detected face of a frame to source resolution.

    Args:
        frame: (H, W, 3) uint8 BGR or (H, W) uint8 grey frame.
        boxes_xywh: detector boxes (x, y, w, h) in frame pixels.
        spec: the model spec.
        rule: the crop rule for the detector that made the boxes (``spec.crop_for(name)``);
            default ``spec.crop``.
        eyes: per box, (2, 2) eye keypoints or None (see :func:`crop_face`).

    Returns:
        (N, s, s) uint8 grey faces, ready for :func:`to_model_input`.
    """
    gray = to_gray(frame)
    rule = rule or spec.crop
    s = rule.source_size
    if not len(boxes_xywh):
        return np.zeros((0, s, s), np.uint8)
    eyes = list(eyes) if eyes is not None else [None] * len(boxes_xywh)
    return np.stack([to_source(crop_face(gray, b, rule, e), s)
                     for b, e in zip(boxes_xywh, eyes)])
