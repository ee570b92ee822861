"""The overlay (issue 34): the class-bar panel goes where it hides no face or label."""

from __future__ import annotations

import numpy as np

from fer_edge.demo.overlay import _LABEL_H, draw, panel_size, place_panel
from fer_edge.demo.tracking import Track
from fer_edge.spec import ModelSpec

LABELS = ModelSpec().labels
#: the four faces the default detector finds on frame 250 of the Hamilton clip (640x360)
HAMILTON_250 = [(40, 68, 75, 75), (165, 100, 75, 75), (311, 56, 92, 92), (387, 109, 75, 75)]


def _overlap(corner, size, box) -> int:
    (x0, y0), (pw, ph), (bx, by, bw, bh) = corner, size, box
    iw = min(x0 + pw, bx + bw) - max(x0, bx)
    ih = min(y0 + ph, by + bh) - max(y0, by - _LABEL_H)
    return max(0, iw) * max(0, ih)


def test_panel_avoids_the_faces_and_labels_of_a_crowded_frame():
    size = panel_size(len(LABELS))
    corner = place_panel((360, 640, 3), HAMILTON_250, size)
    assert all(_overlap(corner, size, b) == 0 for b in HAMILTON_250), corner
    assert corner[1] + size[1] <= 360 - 26  # above the status line
    # the old fixed place (top-left) hid the labels of two of these faces
    assert sum(_overlap((8, 8), size, b) > 0 for b in HAMILTON_250) == 2


def test_panel_stays_top_left_when_that_is_free():
    size = panel_size(len(LABELS))
    assert place_panel((480, 640, 3), [(216, 80, 126, 126)], size) == (8, 8)


def test_drawn_panel_leaves_every_face_label_readable():
    frame = np.full((360, 640, 3), 128, np.uint8)
    p = np.full(7, 0.05, np.float32)
    p[4] = 0.7
    tracks = [Track(k + 1, b, probs=p, raw=p, label=4) for k, b in enumerate(HAMILTON_250)]
    draw(frame, tracks, LABELS, hud="30.0 fps")
    for x, y, w, _h in HAMILTON_250:
        above = frame[max(0, y - _LABEL_H):y - 2, x:x + w]
        assert (above >= 200).all(axis=2).any(), (x, y)  # white label text, not darkened
        assert (above >= 120).mean() > 0.5  # and not under the panel's dark patch
    x0, y0 = place_panel(frame.shape, HAMILTON_250, panel_size(7))
    assert frame[y0 + 2:y0 + 8, x0 + 60:x0 + 90].max() < 128  # the panel is darkened there
