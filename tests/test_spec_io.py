"""fer_edge.runtime.spec_io: the spec bound to the weights (TFLite and ONNX), strict on reading,
and the only source of the crop rule."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_sweep import DEFAULT, needs_default, rezip
from conftest import make_spec

from fer_edge.errors import SpecError
from fer_edge.runtime import load_predictor
from fer_edge.runtime.spec_io import SPEC_ENTRY, embed_in_onnx, read_tflite_spec, tflite_model_bytes


@needs_default
def test_a_spec_without_binding_is_refused(tmp_path):
    flat = tflite_model_bytes(DEFAULT.read_bytes())
    spec = read_tflite_spec(DEFAULT.read_bytes(), "default").replace(sha256="")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(SPEC_ENTRY, spec.to_json())
    (tmp_path / "unbound.tflite").write_bytes(flat + buf.getvalue())
    with pytest.raises(SpecError, match="not bound to the weights.*fer-edge convert"):
        load_predictor(tmp_path / "unbound.tflite")


@needs_default
@pytest.mark.parametrize("edit, match", [
    (lambda d: d.pop("norm_scale"), "lacks field.*norm_scale"),
    (lambda d: d["crop"].pop("scale"), "crop lacks field.*scale"),
    (lambda d: d.update(colour="rgb"), "unknown field.*colour"),
    (lambda d: d.update(schema="fer-edge/spec/1"), "spec/1.*re-export"),
    (lambda d: d["embedding"].update(size=7), "embedding"),
], ids=["missing-field", "missing-crop-field", "unknown-field", "old-schema", "emb-size"])
def test_the_spec_is_strict(tmp_path, edit, match):
    """Every field required, unknown fields refused, no defaults filled in on reading."""
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(rezip(DEFAULT.read_bytes(), edit))
    with pytest.raises(SpecError, match=match):
        load_predictor(bad)


@needs_default
def test_the_packaged_spec_alone_decides_the_crop(monkeypatch):
    """The runtime reads no calibration file: the crop rule of every detector, the default
    one (blazeface-full+refine) included, comes from the model's own spec."""
    import fer_edge.detect.crops as crops

    monkeypatch.setattr(crops, "CALIBRATION_FILE", Path("/nonexistent/face_crops.json"))
    monkeypatch.setattr(crops, "_calibration", lambda: {})
    p = load_predictor(DEFAULT)
    assert p.spec.detector == crops.AUTO
    for name in ("blazeface-full+refine", "blazeface-full", "blazeface-short", "haar"):
        assert p.spec.crop_for(name) is not None


def test_onnx_binding_covers_weights_and_spec(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(3, 7)).astype(
        np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=-1)], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 75, 75, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 7])], [w])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    spec = embed_in_onnx(proto, make_spec())
    good = tmp_path / "tiny.onnx"
    good.write_bytes(proto.SerializeToString())
    pred = load_predictor(good)
    assert pred.spec.sha256 == spec.sha256
    assert pred.predict(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
    # labels swapped inside the embedded spec, binding kept: refused
    d = json.loads(spec.to_json())
    d["labels"][3], d["labels"][4] = d["labels"][4], d["labels"][3]
    for p in proto.metadata_props:
        if p.key == "fer_edge_spec":
            p.value = json.dumps(d)
    (tmp_path / "swapped.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(SpecError, match="does not belong"):
        load_predictor(tmp_path / "swapped.onnx")
    # other weights under the right spec: refused
    embed_in_onnx(proto, make_spec())
    proto.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((3, 7), np.float32),
                                                                 "w"))
    for p in proto.metadata_props:
        if p.key == "fer_edge_spec":
            p.value = spec.to_json()
    (tmp_path / "reweighted.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(SpecError, match="does not belong"):
        load_predictor(tmp_path / "reweighted.onnx")
    assert onnx.load(str(good)).graph.node  # still a valid ONNX file
