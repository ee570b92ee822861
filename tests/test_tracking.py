"""Tracker: IoU matching keeps ids, EMA + hysteresis stop label flicker."""

from __future__ import annotations

import numpy as np

from fer_edge.demo.tracking import Tracker
from fer_edge.detect.geometry import iou


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9


def test_ids_stable_for_moving_faces_and_new_ids_for_new_faces():
    tr = Tracker(max_misses=2)
    ids = []
    for k in range(10):
        tracks = tr.update([(100 + 4 * k, 50, 80, 80), (400 - 4 * k, 60, 70, 70)])
        ids.append(sorted(t.id for t in tracks))
    assert all(i == [1, 2] for i in ids)
    tr.update([])
    tr.update([])
    tr.update([])  # gone for longer than max_misses
    assert [t.id for t in tr.update([(100, 50, 80, 80)])] == [3]


def test_smoothing_and_hysteresis_reduce_flips():
    rng = np.random.default_rng(0)
    tr = Tracker(ema=0.3, hysteresis=0.08)
    (t,) = tr.update([(0, 0, 50, 50)])
    raw_labels, shown = [], []
    for _ in range(200):  # happy and neutral close, noisy: raw argmax flickers
        p = np.full(7, 0.02)
        p[3], p[6] = 0.5 + rng.normal(0, 0.08), 0.42 + rng.normal(0, 0.08)
        p = np.clip(p, 1e-3, None)
        p /= p.sum()
        tr.observe(t, p)
        raw_labels.append(int(p.argmax()))
        shown.append(t.label)
    flips = lambda seq: sum(a != b for a, b in zip(seq, seq[1:]))  # noqa: E731
    assert flips(raw_labels) > 20
    assert flips(shown) <= 2
    assert np.isclose(t.probs.sum(), 1, atol=1e-5)
