"""fer_edge.convert.onnx_fold: Conv [-> Reshape] -> BatchNormalization folded, same outputs."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _graph(reshape: bool, shared: bool):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    c = 4
    inits = [numpy_helper.from_array(rng.normal(size=(c, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=c).astype(np.float32), "b")]
    for name, v in (("s", rng.uniform(0.5, 2, c)), ("beta", rng.normal(size=c)),
                    ("mean", rng.normal(size=c)), ("var", rng.uniform(0.5, 2, c))):
        inits.append(numpy_helper.from_array(v.astype(np.float32), name))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv"], name="conv0")]
    src = "conv"
    if reshape:
        inits.append(numpy_helper.from_array(np.array([1, c, 6, 6], np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["conv", "shape"], ["r"]))
        src = "r"
    nodes.append(helper.make_node("BatchNormalization", [src, "s", "beta", "mean", "var"],
                                  ["bn"], epsilon=1e-3))
    nodes.append(helper.make_node("Relu", ["bn"], ["y"]))
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if shared:  # the conv output also feeds a graph output: must not fold
        nodes.append(helper.make_node("Identity", ["conv"], ["raw"]))
        outs.append(helper.make_tensor_value_info("raw", TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 8, 8])], outs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(["y"], {"x": x})[0]


@pytest.mark.parametrize("reshape", [False, True])
def test_fold_keeps_outputs_and_removes_the_bn(reshape):
    from fer_edge.convert.onnx_fold import fold_batchnorms

    m = _graph(reshape, shared=False)
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    want = _run(m, x)
    assert fold_batchnorms(m) == 1
    assert not [n for n in m.graph.node if n.op_type == "BatchNormalization"]
    assert {t.name for t in m.graph.initializer}.isdisjoint({"s", "beta", "mean", "var"})
    assert np.allclose(_run(m, x), want, atol=1e-4)


def test_a_conv_with_other_consumers_is_left_alone():
    from fer_edge.convert.onnx_fold import fold_batchnorms

    m = _graph(False, shared=True)
    assert fold_batchnorms(m) == 0
