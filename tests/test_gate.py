"""The parity gate's per-class test (light tier, no TensorFlow)."""

from __future__ import annotations

import numpy as np

from fer_edge.evaluate import Gate, compare, holm

LABELS = ("a", "b", "c")


def test_holm_matches_hand_computation():
    # sorted 0.01, 0.02, 0.04 -> 3*0.01, max(.03, 2*.02), max(.04, 1*.04)
    assert np.allclose(holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def _case(flips_a: int, n: int = 300):
    """Reference right everywhere; the build wrong on ``flips_a`` faces of class a."""
    y = np.repeat(np.arange(3), n)
    ref = np.eye(3)[y]
    build = ref.copy()
    build[:flips_a] = np.eye(3)[1]
    return y, ref, build


def test_clear_class_drop_fails_with_or_without_correction():
    y, ref, build = _case(20)  # McNemar b=20, c=0: p ~ 2e-6
    for corr in ("holm", "none"):
        res = compare(LABELS, y, {"x": build}, ref, gate=Gate(max_drop_pp=5,
                                                             class_correction=corr))
        assert any("a recall" in f for f in res["builds"]["x"]["failures"]), corr


def test_borderline_single_class_wobble_needs_correction_to_pass():
    y, ref, build = _case(6)  # b=6, c=0: p = 2 * 0.5**6 = 0.031 raw, 0.094 after Holm
    raw = compare(LABELS, y, {"x": build}, ref, gate=Gate(max_drop_pp=5,
                                                         class_correction="none"))
    adj = compare(LABELS, y, {"x": build}, ref, gate=Gate(max_drop_pp=5))
    assert raw["builds"]["x"]["failures"]
    assert not adj["builds"]["x"]["failures"]
    per = adj["builds"]["x"]["per_class_delta"][0]
    assert per["p"] < 0.05 < per["p_adj"]


def test_gate_defaults_have_one_definition():
    from fer_edge.cli import build_parser
    from fer_edge.config import config_from_args
    from fer_edge.convert.config import ConvertConfig
    from fer_edge.evaluate_config import EvaluateConfig
    from fer_edge.gate import Gate

    g, c = Gate(), ConvertConfig()
    assert c.gate() == g
    args = build_parser().parse_args(["evaluate", "x.tflite", "--data", "d"])
    assert config_from_args(EvaluateConfig, args).gate() == g
