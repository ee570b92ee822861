"""Tiled detection for small faces in large frames (issue 34): --detect-tiles."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from cli_sweep import assert_refused

from fer_edge.detect import (
    Detection,
    TiledDetector,
    build_detector,
    merge_faces,
    parse_tiles,
    tile_grid,
)
from fer_edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "real" / "short_hamilton_clip.mp4"


class SquareFinder:
    """A stand-in detector with BlazeFace's weakness: it finds the bright square of an image
    only when the square is at least ``min_share`` of the image's long side (BlazeFace sees
    every image at 192 px). Eyes at a third of the box from the top."""

    name = "blazeface-full"

    def __init__(self, min_share: float = 0.05):
        self.min_share, self.calls = min_share, 0

    def detect_faces(self, img):
        self.calls += 1
        ys, xs = np.nonzero(img[..., 0] > 250)
        if not len(xs):
            return []
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        if x1 - x0 < self.min_share * max(img.shape[:2]):
            return []
        w, h = float(x1 - x0), float(y1 - y0)
        eyes = np.float32([[x0 + w / 3, y0 + h / 3], [x0 + 2 * w / 3, y0 + h / 3]])
        return [Detection((float(x0), float(y0), w, h), 0.9, eyes)]


def _frame(w, h, square=None):
    f = np.full((h, w, 3), 60, np.uint8)
    if square:
        x, y, s = square
        f[y:y + s, x:x + s] = 255
    return f


@pytest.mark.parametrize("value, want", [("auto", None), ("off", 1), ("OFF", 1), ("3", 3),
                                         ("6", 6)])
def test_parse_tiles(value, want):
    assert parse_tiles(value) == want


@pytest.mark.parametrize("value", ["7", "0", "-2", "many", "2.5", ""])
def test_parse_tiles_refuses(value):
    with pytest.raises(ConfigError, match="--detect-tiles"):
        parse_tiles(value)


def test_demo_refuses_a_bad_tile_count(tmp_path, capsys):
    assert_refused(["demo", "--video", "sample", "--headless", "--detect-tiles", "9",
                    "--log", tmp_path / "f.csv"], capsys, tmp_path, "--detect-tiles '9'",
                   "auto, off", "2 to 6")


def test_tile_grid_cells_cover_the_frame_and_tiles_overlap():
    tiles = tile_grid((1080, 1920, 3), 3)
    assert len(tiles) == 9
    cover = np.zeros((1080, 1920), int)
    for (x0, y0, x1, y1), (cx0, cy0, cx1, cy1) in tiles:
        cover[int(cy0):int(cy1), int(cx0):int(cx1)] += 1
        assert x0 <= cx0 and y0 <= cy0 and x1 >= cx1 and y1 >= cy1  # a tile holds its cell
        assert 0 <= x0 < x1 <= 1920 and 0 <= y0 < y1 <= 1080
    assert (cover == 1).all()  # cells: every pixel in exactly one
    (x0, _, x1, _), _ = tiles[4]  # the middle tile reaches past its 640-px cell on both sides
    assert x0 < 640 and x1 > 1280


def test_small_face_in_a_large_frame_found_by_a_tile_box_and_eyes_in_frame_pixels():
    inner = SquareFinder()
    det = TiledDetector(inner, "auto")
    frame = _frame(1920, 1080, (1500, 800, 60))  # 60 px: 3 % of the long side
    assert inner.detect_faces(frame) == []  # the full frame alone misses it
    found = det.detect_faces(frame)
    assert len(found) == 1
    assert found[0].box == (1500.0, 800.0, 60.0, 60.0)
    np.testing.assert_allclose(found[0].keypoints, [[1520, 820], [1540, 820]])
    assert det.tile_frames == 1 and det.name == "blazeface-full"


def test_face_on_a_cell_border_is_found_once():
    det = TiledDetector(SquareFinder(), "3")
    found = det.detect_faces(_frame(1920, 1080, (610, 330, 60)))  # centred on x=640, y=360
    assert [d.box for d in found] == [(610.0, 330.0, 60.0, 60.0)]


def test_full_frame_and_tile_boxes_of_one_face_merge():
    a = Detection((100.0, 100.0, 80.0, 80.0), 0.9)
    b = Detection((104.0, 98.0, 76.0, 84.0), 0.7)  # the same face seen by a tile
    inside = Detection((120.0, 120.0, 30.0, 30.0), 0.6)  # a part of it
    other = Detection((400.0, 100.0, 80.0, 80.0), 0.6)
    assert merge_faces([b, inside, a, other]) == [a, other]


def test_auto_costs_one_pass_on_small_frames_and_on_large_faces():
    inner = SquareFinder()
    det = TiledDetector(inner, "auto")
    det.detect_faces(_frame(640, 480, (300, 200, 20)))  # the demo's usual frame: never tiled
    assert inner.calls == 1
    det.detect_faces(_frame(1920, 1080, (800, 300, 500)))  # one person close to the camera
    assert inner.calls == 2 and det.tile_frames == 0
    det.detect_faces(_frame(1920, 1080))  # nothing found: look closer
    assert inner.calls == 2 + 1 + 9 and det.tile_frames == 1
    off = TiledDetector(SquareFinder(), "off")
    off.detect_faces(_frame(1920, 1080))
    assert off.inner.calls == 1


def test_build_detector_tiles_only_the_first_pass():
    det = build_detector("auto", tiles="auto")
    assert isinstance(det.first, TiledDetector) and det.name == "blazeface-full+refine"
    assert not isinstance(build_detector("blazeface-full"), TiledDetector)  # API default: off
    assert not isinstance(build_detector("blazeface-full", tiles="off"), TiledDetector)


@pytest.mark.skipif(not CLIP.is_file(), reason=f"Hamilton clip not found at {CLIP}")
def test_tiled_hamilton_finds_the_faces_the_full_frame_misses():
    """Hamilton frames repeated 3 x 3 into 1920x1080 (``benchmarks/detectors.py --tiled``):
    BlazeFace on the whole frame finds few of the faces it finds on the 640x360 frame; with
    tiles it finds most of them."""
    spec = importlib.util.spec_from_file_location("detectors", ROOT / "benchmarks" /
                                                  "detectors.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    frames = bench.clip_frames()[0:275:40]
    big = bench.tiled_clip(frames, 3, (1920, 1080))
    ref = build_detector("blazeface-full")
    known = [bench._cells([d.box for d in ref.detect_faces(f)], 3, g.shape, f.shape)
             for f, g in zip(frames, big)]
    tiled = build_detector("blazeface-full", tiles="auto")
    n = sum(map(len, known))
    full_hits = sum(bench._match([d.box for d in ref.detect_faces(g)], k)
                    for g, k in zip(big, known))
    tiled_hits = sum(bench._match([d.box for d in tiled.detect_faces(g)], k)
                     for g, k in zip(big, known))
    # measured: 63 known, 20 found on the whole frame, 53 with tiles
    assert n >= 50 and full_hits < 0.5 * n and tiled_hits > 0.75 * n, (n, full_hits, tiled_hits)
    assert tiled_hits - full_hits > 0.4 * n


@pytest.mark.parametrize("detector", ["haar", "haar+refine"])
def test_a_tile_count_with_a_detector_that_cannot_tile_is_refused(tmp_path, capsys, detector):
    from fer_edge.cli import main

    assert_refused(["demo", "--video", "sample", "--headless", "--detect-tiles", "2",
                    "--detector", detector], capsys, tmp_path, "BlazeFace detectors only",
                   "--detect-width 0")
    assert main(["demo", "--video", "sample", "--headless", "--max-frames", "1",
                 "--detector", detector]) == 0  # the default (auto) stays fine with Haar
