"""Tiled detection: small faces in large frames (``--detect-tiles``). Light tier.

BlazeFace letterboxes any frame to 192 px, so a 60-px face in a 1920-px frame shrinks to 6 px
and is lost. :class:`TiledDetector` also runs the detector on overlapping tiles of the frame
(:func:`tile_grid`) and merges what it finds there with the full frame's faces
(:func:`merge_faces`).
"""

from __future__ import annotations

import numpy as np

from fer_edge.detect.detection import Detection, FaceDetector
from fer_edge.detect.geometry import intersection, iou, shifted
from fer_edge.errors import ConfigError

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
        _, _, w, h = d.box
        dup = False
        for k in kept:
            small = max(min(w * h, k.box[2] * k.box[3]), 1e-9)
            if (iou(d.box, k.box) > TILE_NMS_IOU
                    or intersection(d.box, k.box) / small > TILE_NMS_INSIDE):
                dup = True
                break
        if not dup:
            kept.append(d)
    return kept


class TiledDetector(FaceDetector):
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

    def __init__(self, inner: FaceDetector, tiles: str | int = "auto"):
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
                    found.append(shifted(d, x0, y0))
        return merge_faces(found)
