"""convert/recover_float.py: the packaged int8 build back to a trainable float Keras model."""

from __future__ import annotations

import importlib
import json

import pytest
from conftest import ROOT

pytestmark = pytest.mark.tf


def _script():
    return importlib.import_module("convert.recover_float")  # repo root on pytest's pythonpath


def test_recovered_float_model_computes_the_int8_model(fer_npz, tmp_path):
    mod = _script()
    build = ROOT / "fer_edge" / "assets" / "fer_default_int8.tflite"
    out = tmp_path / "rec"
    assert mod.main([str(build), str(out), "--data", str(fer_npz), "--check", "300"]) == 0
    facts = json.loads((out / "check.json").read_text())
    # weight rounding is all that differs: the same answers on real faces
    assert facts["agreement"] >= 0.95, facts
    assert abs(facts["float_accuracy"] - facts["int8_accuracy"]) <= 0.02, facts
    spec = json.loads((out / "spec.json").read_text())
    assert spec["arch"] == "inception_v3" and spec["extra"]["recovered_from"] == build.name
    # the folder is an --init source: the same classes, the whole model continues
    from fer_edge.spec import ModelSpec
    from fer_edge.train.fit import init_model

    model, new_head = init_model(out / "model_float.h5", ModelSpec.read(out / "spec.json"),
                                 tuple(spec["labels"]), 0.4)
    assert not new_head and model.output_shape == (None, 7)


def test_refuses_an_existing_folder(tmp_path):
    mod = _script()
    (tmp_path / "rec").mkdir()
    with pytest.raises(SystemExit, match="exists"):
        mod.main([str(ROOT / "fer_edge" / "assets" / "fer_default_int8.tflite"),
                  str(tmp_path / "rec")])
