"""Builds: TFLite float32 / full-int8 and ONNX float / int8 (QDQ). Heavy tier.

Every build has two outputs: the probabilities first, then the embedding (the pooled face
features, the output of the model's :data:`~fer_edge.train.model.POOL_LAYER`). Every function
returns the file's bytes with a *draft* spec embedded: its ``embedding`` names the build's
real embedding output and size, with empty ``mean``/``std`` (``fer-edge convert`` measures
them through the runtime and re-embeds the spec with :func:`rebind`). The caller writes the
bytes atomically and adds the sidecar ``.spec.json``.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from fer_edge.convert.onnx_fold import fold_batchnorms
from fer_edge.errors import ModelFileError
from fer_edge.quiet import native_stderr_quiet
from fer_edge.runtime.spec_io import embed_bound_tflite, embed_in_onnx
from fer_edge.spec import Embedding, ModelSpec
from fer_edge.train._keras import keras, tf
from fer_edge.train.model import POOL_LAYER

log = logging.getLogger(__name__)

#: output names of the ONNX builds (the TFLite builds keep the converter's tensor names; the
#: spec records each build's real name)
PROBS_OUTPUT, EMBEDDING_OUTPUT = "probs", "embedding"


def with_embedding(model: keras.Model) -> tuple[keras.Model, tuple[str, str]]:
    """The classifier with its pooled features as a second output.

    Args:
        model: a flat fer-edge classifier (float, or its QAT copy whose layers are
            ``quant_<name>``) with a :data:`~fer_edge.train.model.POOL_LAYER` layer.

    Returns:
        ``(model2, (probs name, embedding name))``: the same graph and weights with outputs
        [(N, classes) probabilities, (N, D) pooled features], and Keras's names of the two
        outputs (the keys of a converted model's signature).

    Raises:
        ModelFileError: the model has no pooling layer of that name.
    """
    for name in (POOL_LAYER, f"quant_{POOL_LAYER}"):
        try:
            pool = model.get_layer(name)
        except ValueError:
            continue
        two = keras.Model(model.input, [model.output, pool.output], name=model.name)
        return two, (two.output_names[0], two.output_names[1])
    raise ModelFileError(f"{model.name}: no {POOL_LAYER!r} layer (the pooled features that "
                         "every build exports as its embedding); convert a model made by "
                         "`fer-edge train`")


def draft_embedding(output: str, size: int) -> Embedding:
    """The embedding entry of a build's spec before its statistics are measured."""
    return Embedding(output=output, size=int(size), mean=(), std=())


def tflite_float(model: keras.Model, spec: ModelSpec) -> tuple[bytes, ModelSpec]:
    """float32 TFLite of the float Keras model, outputs [probabilities, embedding]."""
    two, keys = with_embedding(model)
    conv = tf.lite.TFLiteConverter.from_keras_model(two)
    return _bind_tflite(conv.convert(), keys, spec.replace(input_dtype="float32"))


def tflite_int8(qat_model: keras.Model, spec: ModelSpec) -> tuple[bytes, ModelSpec]:
    """Full-integer TFLite from the QAT model, int8 input and outputs [probabilities,
    embedding] (the QAT pooling layer's quantised output; the runtime dequantises both
    outputs with their own scale and zero point).

    No representative dataset and no ``supported_ops``: with a QAT model either one gives a
    model that converts but is garbage (convert/README.md). The input scale and zero
    point come from the QAT input quantizer (about 1/127.5 and 0 for the [-1, 1] input); the
    runtime reads them from the file.
    """
    two, keys = with_embedding(qat_model)
    conv = tf.lite.TFLiteConverter.from_keras_model(two)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": the
        warnings.filterwarnings(  # QAT input quantizer holds them (the note above)
            "ignore", "Statistics for quantized inputs", UserWarning)
        data = conv.convert()
    return _bind_tflite(data, keys, spec.replace(input_dtype="int8"))


def _bind_tflite(flat: bytes, keys: tuple[str, str], spec: ModelSpec) -> tuple[bytes, ModelSpec]:
    """Outputs in the order [probabilities, embedding]; the draft spec embedded and bound."""
    flat, embedding = tflite_outputs(flat, keys)
    return embed_bound_tflite(flat, spec.replace(embedding=embedding))


def tflite_outputs(flat: bytes, keys: tuple[str, str]) -> tuple[bytes, Embedding]:
    """Find the probability and embedding outputs of a converted TFLite by their signature
    names ``keys`` and put them in that order (the converter may list the embedding first).

    Returns:
        (the flatbuffer, its outputs reordered if needed; the draft embedding entry with the
        output tensor's real name and size).
    """
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_quiet():  # LiteRT's "Created ... XNNPACK delegate" line (shown with -v)
        interp = Interpreter(model_content=flat)
        interp.allocate_tensors()
    sig = interp.get_signature_runner().get_output_details()
    if set(keys) - set(sig):
        raise RuntimeError(f"TFLite signature outputs {sorted(sig)} lack {keys}")
    probs, emb = sig[keys[0]], sig[keys[1]]
    want = [int(probs["index"]), int(emb["index"])]
    if [int(o["index"]) for o in interp.get_output_details()] != want:
        flat = _set_tflite_outputs(flat, want)
    return flat, draft_embedding(emb["name"], int(emb["shape"][-1]))


def _set_tflite_outputs(flat: bytes, outputs: list[int]) -> bytes:
    """The flatbuffer with the main subgraph's output list set to ``outputs`` (tensor indices,
    the same tensors in another order); nothing else changes."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(flat))
    sg = model.subgraphs[0]
    if sorted(int(i) for i in sg.outputs) != sorted(outputs):
        raise RuntimeError(f"TFLite outputs {list(sg.outputs)} are not {outputs}")
    sg.outputs = np.array(outputs, dtype=np.int32)
    return bytes(fu.convert_object_to_bytearray(model))


def onnx_float(model: keras.Model, spec: ModelSpec, opset: int) -> tuple[bytes, ModelSpec]:
    """float ONNX via tf2onnx (NHWC input ``image``; outputs ``probs``, ``embedding``)."""
    import tf2onnx

    two, keys = with_embedding(model)
    sig = (tf.TensorSpec((None, spec.input_size, spec.input_size, spec.channels), tf.float32,
                         name="image"),)
    proto, _ = tf2onnx.convert.from_keras(two, input_signature=sig, opset=opset)
    fold_batchnorms(proto)
    _name_outputs(proto.graph, keys)
    spec = _set_meta(proto, spec.replace(input_dtype="float32",
                                         embedding=onnx_embedding(proto)))
    return proto.SerializeToString(), spec


def _name_outputs(g, names: tuple[str, str]) -> None:
    """Rename the graph outputs ``names`` (probabilities, embedding) to :data:`PROBS_OUTPUT`
    and :data:`EMBEDDING_OUTPUT`, in that order, everywhere in the graph."""
    new = {names[0]: PROBS_OUTPUT, names[1]: EMBEDDING_OUTPUT}
    outs = {o.name: o for o in g.output}
    if set(outs) != set(new):
        raise RuntimeError(f"ONNX outputs {sorted(outs)} are not {list(names)}")
    for n in g.node:
        for field in (n.input, n.output):
            for k, v in enumerate(field):
                if v in new:
                    field[k] = new[v]
    ordered = [outs[names[0]], outs[names[1]]]
    for o in ordered:
        o.name = new[o.name]
    kept = [type(o)() for o in ordered]
    for k, o in zip(kept, ordered):
        k.CopyFrom(o)
    del g.output[:]
    g.output.extend(kept)


def onnx_embedding(proto) -> Embedding:
    """The draft embedding entry of an ONNX build: its :data:`EMBEDDING_OUTPUT` output and
    that output's last dimension."""
    outs = [o.name for o in proto.graph.output]
    if outs != [PROBS_OUTPUT, EMBEDDING_OUTPUT]:
        raise RuntimeError(f"ONNX outputs {outs} are not [{PROBS_OUTPUT!r}, "
                           f"{EMBEDDING_OUTPUT!r}]")
    dims = proto.graph.output[1].type.tensor_type.shape.dim
    if not dims or not dims[-1].dim_value:
        raise RuntimeError(f"ONNX output {EMBEDDING_OUTPUT!r} has no fixed feature length")
    return draft_embedding(EMBEDDING_OUTPUT, dims[-1].dim_value)


def rebind(data: bytes, suffix: str, spec: ModelSpec) -> tuple[bytes, ModelSpec]:
    """A build's bytes with ``spec`` embedded in place of its draft spec, bound to the weights.

    Args:
        data: a build from this module.
        suffix: ".tflite" or ".onnx".
        spec: the final spec (the embedding statistics filled in).

    Returns:
        (the build's bytes, the bound spec to write as its sidecar).
    """
    if suffix == ".tflite":
        return embed_bound_tflite(data, spec)
    import onnx

    proto = onnx.load_from_string(data)
    spec = _set_meta(proto, spec)
    return proto.SerializeToString(), spec


def onnx_int8_from_tflite(int8_tflite: bytes, spec: ModelSpec, opset: int,
                          uint8_activations: bool = True) -> tuple[bytes, ModelSpec]:
    """int8 QDQ ONNX carrying the QAT graph's quantisation: tf2onnx of the int8 TFLite.

    The ONNX build then rounds every tensor on the same grid as the int8 TFLite (same scales
    and zero points, same per-channel int8 weights) instead of onnxruntime calibrating its own
    ranges. Three rewrites make it a build like the others:

    - input: float32 NHWC ``image`` in the spec's normalisation, quantised inside the graph
      with the TFLite input's own scale and zero point (the runtime never quantises);
    - outputs: the softmax in float32 (``probs``), not re-rounded to int8 steps of 1/256, so
      near-ties between two classes are not broken by that rounding; the pooled features
      (``embedding``) dequantised, the same values the classifier reads;
    - activations uint8 instead of int8 (zero point + 128: the same grid, value for value).
      onnxruntime on x86 fuses convolutions into integer kernels only for uint8 activations;
      with int8 ones 68 of InceptionV3's 94 convolutions ran in float, 8 ms a face against
      2.7 ms. On x86 CPUs without VNNI u8 x s8 products can saturate; there the runtime runs
      onnxruntime's ``session.x64quantprecision`` mode (u8 x u8,
      :func:`fer_edge.runtime.onnx.u8s8_may_saturate`), and the parity gate measures every
      build as the runtime runs it.

    Args:
        int8_tflite: the full-integer TFLite (int8 input and outputs [probabilities,
            embedding]) from :func:`tflite_int8`.
        spec: the model spec.
        opset: ONNX opset.
        uint8_activations: rewrite activations to uint8 (False keeps tf2onnx's int8, for
            ``studies/onnx_int8/onnx_int8_variants.py``).
    """
    import onnx
    import tf2onnx
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_quiet():
        interp = Interpreter(model_content=int8_tflite)
    in_scale, in_zp = interp.get_input_details()[0]["quantization"]
    outs = interp.get_output_details()
    if len(outs) != 2:
        raise ModelFileError(f"the int8 TFLite has {len(outs)} output(s), not [probabilities, "
                             "embedding]; make it with this version's `fer-edge convert`")
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "m.tflite"
        src.write_bytes(int8_tflite)
        with warnings.catch_warnings():  # tf2onnx reads the file with tf.lite.Interpreter,
            warnings.simplefilter("ignore", UserWarning)  # which warns it is deprecated
            proto, _ = tf2onnx.convert.from_tflite(str(src), opset=opset)
    g = proto.graph
    _float_input(g, spec, in_scale, in_zp)
    probs = _float_probs(g, outs[0]["name"], spec.num_classes)
    emb = _float_embedding(g, outs[1]["name"], int(outs[1]["shape"][-1]))
    del g.output[:]
    g.output.extend([probs, emb])
    n_u8 = _uint8_activations(g) if uint8_activations else 0
    _unshare_weight_zero_points(g)
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    del g.value_info[:]
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.checker.check_model(proto)
    log.info("int8 ONNX from the int8 TFLite: %d activation quantisers as uint8", n_u8)
    spec = _set_meta(proto, spec.replace(input_dtype="float32", embedding=onnx_embedding(proto)))
    return proto.SerializeToString(), spec


def _float_input(g, spec: ModelSpec, in_scale: float, in_zp: int) -> None:
    """Float input ``image`` quantised in the graph with the TFLite input's scale and zero
    point."""
    from onnx import TensorProto, helper, numpy_helper

    old_in = g.input[0].name
    g.initializer.extend([numpy_helper.from_array(np.array(in_scale, np.float32), "image_scale"),
                          numpy_helper.from_array(np.array(in_zp, np.int8), "image_zero_point")])
    g.node.insert(0, helper.make_node("QuantizeLinear", ["image", "image_scale",
                                                         "image_zero_point"], [old_in],
                                      name="image_quantize"))
    del g.input[:]
    g.input.append(helper.make_tensor_value_info(
        "image", TensorProto.FLOAT, [None, spec.input_size, spec.input_size, spec.channels]))


def _float_probs(g, name: str, num_classes: int):
    """The int8 softmax output ``name`` -> the float softmax before its final QuantizeLinear,
    as :data:`PROBS_OUTPUT`; returns the new output's ValueInfo."""
    from onnx import TensorProto, helper

    last = next(n for n in g.node if name in n.output)
    if last.op_type != "QuantizeLinear":
        raise RuntimeError(f"int8 ONNX: the graph ends in {last.op_type}, not QuantizeLinear")
    g.node.remove(last)
    g.node.append(helper.make_node("Identity", [last.input[0]], [PROBS_OUTPUT],
                                   name=PROBS_OUTPUT))
    return helper.make_tensor_value_info(PROBS_OUTPUT, TensorProto.FLOAT, [None, num_classes])


def _float_embedding(g, name: str, size: int):
    """The int8 pooled-features output ``name`` -> its dequantised value (the
    DequantizeLinear through which the classifier reads it) as :data:`EMBEDDING_OUTPUT`;
    returns the new output's ValueInfo."""
    from onnx import TensorProto, helper

    dq = [n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] == name]
    if not dq:
        raise RuntimeError(f"int8 ONNX: no DequantizeLinear reads the embedding {name!r}")
    g.node.append(helper.make_node("Identity", [dq[0].output[0]], [EMBEDDING_OUTPUT],
                                   name=EMBEDDING_OUTPUT))
    return helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, [None, size])


def _uint8_activations(g) -> int:
    """int8 activation zero points -> uint8 (+128, the same grid); returns how many.

    Weights and biases (DequantizeLinear of an initializer) stay as they are.
    """
    from onnx import numpy_helper

    init = {t.name: t for t in g.initializer}
    count = 0
    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or n.input[0] in init:
            continue
        zp = numpy_helper.to_array(init[n.input[2]])
        if zp.dtype != np.int8:
            continue
        name = f"u8_zero_point_{count}"
        g.initializer.append(numpy_helper.from_array(
            (zp.astype(np.int16) + 128).astype(np.uint8), name))
        n.input[2] = name
        count += 1
    return count


def _unshare_weight_zero_points(g) -> None:
    """One zero point per weight: tf2onnx shares them between layers, and onnxruntime's x64
    precision mode (u8 weights) then fails to load the model ("replace the existing tensor")."""
    import onnx

    init = {t.name: t for t in g.initializer}
    weight_dq = [n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in init
                 and len(n.input) > 2]
    users: dict[str, int] = {}
    for n in weight_dq:
        users[n.input[2]] = users.get(n.input[2], 0) + 1
    for k, n in enumerate(weight_dq):
        if users[n.input[2]] > 1:
            t = onnx.TensorProto()
            t.CopyFrom(init[n.input[2]])
            t.name = f"weight_zero_point_{k}"
            g.initializer.append(t)
            n.input[2] = t.name


def onnx_int8(float_onnx: bytes, spec: ModelSpec, calib_x: np.ndarray,
              scheme: str = "s8s8") -> tuple[bytes, ModelSpec]:
    """int8 QDQ ONNX by onnxruntime static quantisation of the float ONNX (from
    :func:`onnx_float`: its two float outputs stay float).

    Per-channel int8 weights, moving-average MinMax calibration on ``calib_x``: (N, S, S, C) float32
    preprocessed *training* faces. ``scheme`` "s8s8" (int8 activations; onnxruntime's advice
    for ARM; on x86 it fuses only some convolutions into integer kernels) or "u8s8" (uint8
    activations: 2.4x faster on an x86 with VNNI in the toolchain probe; on an AVX2-only x86,
    before the runtime turned on onnxruntime's x64 precision mode, a tiny model lost 22 pp on
    one class to saturated u8 x s8 products). :func:`onnx_int8_from_tflite` is the default.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(range(len(calib_x)))

        def get_next(self):
            k = next(self.it, None)
            return None if k is None else {"image": calib_x[k:k + 1]}

    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "f.onnx", Path(d) / "q.onnx"
        src.write_bytes(float_onnx)
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8 if scheme == "u8s8" else
                        QuantType.QInt8, weight_type=QuantType.QInt8,
                        per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                        # mean of per-face ranges, not the global min/max: a few faces
                        # drive this model's last blocks ~100x past their usual range, and
                        # a global max then rounds every usual activation to zero
                        extra_options={"CalibMovingAverage": True,
                                       "CalibMovingAverageConstant": 0.01})
        proto = onnx.load(str(dst))
    spec = _set_meta(proto, spec.replace(input_dtype="float32", embedding=onnx_embedding(proto)))
    return proto.SerializeToString(), spec


def _set_meta(proto, spec: ModelSpec) -> ModelSpec:
    """Embed ``spec`` bound to the model (:func:`~fer_edge.runtime.spec_io.embed_in_onnx`);
    returns the bound spec (write it as the sidecar)."""
    return embed_in_onnx(proto, spec)
