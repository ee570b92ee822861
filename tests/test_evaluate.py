"""``fer-edge evaluate`` (issue 34): no gate columns without a reference, a file of test faces
only is scored, and a class with no face reads n/a, not 0.0 %. Light tier."""

from __future__ import annotations

import numpy as np
import pytest
from cli_sweep import run_cli

from fer_edge.data.synthetic import make_faces
from fer_edge.evaluate import compare, render_md, size_mb
from fer_edge.runtime import default_model_path

DEFAULT = default_model_path()
needs_default = pytest.mark.skipif(DEFAULT is None, reason="this checkout has no packaged model")
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _probs(pred):
    return np.eye(7, dtype=np.float32)[pred]


def test_report_without_reference_has_no_gate_columns():
    y = np.array([0, 1, 2, 3, 3])
    md = render_md(compare(LABELS, y, {"a.tflite": _probs(y)}), {}, "t")
    assert "nan" not in md
    assert "| pass |" not in md and "gate" not in md.lower() and "Δ" not in md
    assert "| a.tflite | 100.00% | 100.00% |" in md


def test_report_with_reference_keeps_the_gate():
    y = np.array([0, 1, 2, 3, 3])
    md = render_md(compare(LABELS, y, {"a": _probs(y)}, _probs(y), "ref"), {}, "t")
    assert "| gate |" in md and "pass" in md and "## Gate" in md


def test_class_without_faces_reads_na():
    y = np.array([3])
    md = render_md(compare(LABELS, y, {"a": _probs(y)}), {}, "t")
    assert "| angry | 0 | n/a |" in md and "| happy | 1 | 100.0% |" in md
    assert "| 0.0% |" not in md


def test_size_mb_never_reads_zero_for_a_file():
    assert size_mb(22_400_000) == "22.4"
    assert size_mb(34_000) == "0.034" and size_mb(1_200) == "0.0012"
    assert size_mb(0) == "0.0"


@needs_default
def test_cli_test_only_file_without_reference(tmp_path, capsys):
    x, y = make_faces(12, 0)
    np.savez(tmp_path / "test_only.npz", images=x, labels=y.astype(np.uint8),
             usage=np.full(12, 2, np.uint8))
    rc, err, out = run_cli(["evaluate", str(DEFAULT), "--data", str(tmp_path / "test_only.npz"),
                            "--latency-runs", "1", "--limit", "1"], capsys)
    assert rc == 0, err
    assert "nan" not in out and "| pass |" not in out
    assert out.count("| n/a |") == 6, out
