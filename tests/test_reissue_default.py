"""convert/reissue_default.py: bad input stops with one line, exit 2, before the long part and
without writing; a build whose output changed is never written (exit 3). Light tier: every
case here stops before TensorFlow's flatbuffer tools are needed."""

from __future__ import annotations

import importlib
import sys

import pytest
from cli_sweep import snapshot

from fer_edge.errors import AccuracyGateError
from fer_edge.runtime import default_model_path


@pytest.fixture(scope="module")
def reissue():
    return importlib.import_module("convert.reissue_default")  # repo root on pytest's path


def _run(reissue, monkeypatch, capsys, *argv) -> tuple[int, list[str]]:
    monkeypatch.setattr(sys, "argv", ["reissue_default.py", *map(str, argv)])
    capsys.readouterr()
    rc = reissue.main()
    return rc, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("case", ["missing", "folder", "not-a-build", "schema-2", "out-folder"])
def test_bad_input_one_line_exit_2_nothing_written(reissue, monkeypatch, capsys, tmp_path,
                                                    case):
    (tmp_path / "notes.tflite").write_text("not a model")
    (tmp_path / "outdir").mkdir()
    asset = default_model_path()
    old, out, needle = {
        "missing": (tmp_path / "old.tflite", tmp_path / "new.tflite", "not found"),
        "folder": (tmp_path / "outdir", tmp_path / "new.tflite", "is a folder"),
        "not-a-build": (tmp_path / "notes.tflite", tmp_path / "new.tflite",
                        "no readable fer-edge spec"),
        "schema-2": (asset, tmp_path / "new.tflite", "not schema 1 (already re-issued)"),
        "out-folder": (asset, tmp_path / "outdir", "--out"),
    }[case]
    if asset is None and case in ("schema-2", "out-folder"):
        pytest.skip("this checkout has no packaged model")
    before = snapshot(tmp_path)
    rc, err = _run(reissue, monkeypatch, capsys, old, "--data", tmp_path / "x.npz",
                   "--out", out)
    assert rc == 2 and len(err) == 1 and err[0].startswith("reissue_default: error: "), err
    assert needle in err[0] and "Traceback" not in err[0], err
    if case != "out-folder":
        assert "schema-1 build" in err[0]  # the fix: where to get the right input
    assert snapshot(tmp_path) == before


def test_a_changed_output_is_refused_exit_3(reissue):
    with pytest.raises(AccuracyGateError, match="differ .* on 2 of 10 .* nothing written"):
        reissue.check_identical({"split": "test", "n": 10, "identical": 8})
    assert AccuracyGateError.exit_code == 3
    reissue.check_identical({"split": "test", "n": 10, "identical": 10})
