"""The second pass (``NAME+refine``; ``auto`` is ``blazeface-full+refine``): each face again,
large and upright. Light tier.

BlazeFace's eyes are coarse on a face that is small in its input, and its box shrinks as a
face tilts; the second pass sees the face large and upright: the face is cut out at twice its
box, turned upright by the first pass's eye line, and BlazeFace short-range runs on it; its box
and eyes, mapped back to the frame, replace the first pass's.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fer_edge.detect.blazeface import BlazeFaceDetector
from fer_edge.detect.defaults import REFINE, REFINE_REUSE
from fer_edge.detect.detection import Detection, FaceDetector
from fer_edge.detect.geometry import iou, moved
from fer_edge.errors import ConfigError
from fer_edge.preprocess import eye_angle


class RefinedDetector(FaceDetector):
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

    def __init__(self, first: FaceDetector, refiner: BlazeFaceDetector | None = None,
                 context: float = 2.0, reuse: int = REFINE_REUSE):
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
                r = moved(old[1], old[0], d.box)
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
