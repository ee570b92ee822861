"""Builds: TFLite float32 / full-int8 and ONNX float / int8 (QDQ). Heavy tier.

Every function returns the file's bytes with the spec embedded (the caller writes them
atomically and adds the sidecar ``.spec.json``).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from fer_edge.convert.onnx_fold import fold_batchnorms
from fer_edge.runtime.spec_io import embed_bound_tflite, embed_in_onnx
from fer_edge.spec import ModelSpec
from fer_edge.train._keras import keras, tf

log = logging.getLogger(__name__)


def tflite_float(model: keras.Model, spec: ModelSpec) -> tuple[bytes, ModelSpec]:
    """float32 TFLite of the float Keras model."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    return embed_bound_tflite(conv.convert(), spec.replace(input_dtype="float32"))


def tflite_int8(qat_model: keras.Model, spec: ModelSpec) -> tuple[bytes, ModelSpec]:
    """Full-integer TFLite from the QAT model, int8 input and output.

    No representative dataset and no ``supported_ops``: with a QAT model either one gives a
    model that converts but is garbage (convert/README.md). The input scale and zero
    point come from the QAT input quantizer (about 1/127.5 and 0 for the [-1, 1] input); the
    runtime reads them from the file.
    """
    conv = tf.lite.TFLiteConverter.from_keras_model(qat_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": the
        warnings.filterwarnings(  # QAT input quantizer holds them (the note above)
            "ignore", "Statistics for quantized inputs", UserWarning)
        data = conv.convert()
    return embed_bound_tflite(data, spec.replace(input_dtype="int8"))


def onnx_float(model: keras.Model, spec: ModelSpec, opset: int) -> tuple[bytes, ModelSpec]:
    """float ONNX via tf2onnx (NHWC input ``image``)."""
    import tf2onnx

    sig = (tf.TensorSpec((None, spec.input_size, spec.input_size, spec.channels), tf.float32,
                         name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=sig, opset=opset)
    fold_batchnorms(proto)
    spec = _set_meta(proto, spec.replace(input_dtype="float32"))
    return proto.SerializeToString(), spec


def onnx_int8_from_tflite(int8_tflite: bytes, spec: ModelSpec, opset: int,
                          uint8_activations: bool = True) -> tuple[bytes, ModelSpec]:
    """int8 QDQ ONNX carrying the QAT graph's quantisation: tf2onnx of the int8 TFLite.

    The ONNX build then rounds every tensor on the same grid as the int8 TFLite (same scales
    and zero points, same per-channel int8 weights) instead of onnxruntime calibrating its own
    ranges. Three rewrites make it a build like the others:

    - input: float32 NHWC ``image`` in the spec's normalisation, quantised inside the graph
      with the TFLite input's own scale and zero point (the runtime never quantises);
    - output: the softmax in float32 (``probs``), not re-rounded to int8 steps of 1/256, so
      near-ties between two classes are not broken by that rounding;
    - activations uint8 instead of int8 (zero point + 128: the same grid, value for value).
      onnxruntime on x86 fuses convolutions into integer kernels only for uint8 activations;
      with int8 ones 68 of InceptionV3's 94 convolutions ran in float, 8 ms a face against
      2.7 ms. On x86 CPUs without VNNI u8 x s8 products can saturate; there the runtime runs
      onnxruntime's ``session.x64quantprecision`` mode (u8 x u8,
      :func:`fer_edge.runtime.onnx.u8s8_may_saturate`), and the parity gate measures every
      build as the runtime runs it.

    Args:
        int8_tflite: the full-integer TFLite (int8 input and output) from :func:`tflite_int8`.
        spec: the model spec.
        opset: ONNX opset.
        uint8_activations: rewrite activations to uint8 (False keeps tf2onnx's int8, for
            ``studies/onnx_int8/onnx_int8_variants.py``).
    """
    import onnx
    import tf2onnx
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=int8_tflite)
    in_scale, in_zp = interp.get_input_details()[0]["quantization"]
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "m.tflite"
        src.write_bytes(int8_tflite)
        with warnings.catch_warnings():  # tf2onnx reads the file with tf.lite.Interpreter,
            warnings.simplefilter("ignore", UserWarning)  # which warns it is deprecated
            proto, _ = tf2onnx.convert.from_tflite(str(src), opset=opset)
    g = proto.graph
    _float_io(g, spec, in_scale, in_zp)
    n_u8 = _uint8_activations(g) if uint8_activations else 0
    _unshare_weight_zero_points(g)
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    del g.value_info[:]
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.checker.check_model(proto)
    log.info("int8 ONNX from the int8 TFLite: %d activation quantisers as uint8", n_u8)
    spec = _set_meta(proto, spec.replace(input_dtype="float32"))
    return proto.SerializeToString(), spec


def _float_io(g, spec: ModelSpec, in_scale: float, in_zp: int) -> None:
    """Float input ``image`` quantised in the graph; float softmax output ``probs``."""
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
    last = next(n for n in g.node if g.output[0].name in n.output)
    if last.op_type != "QuantizeLinear":
        raise RuntimeError(f"int8 ONNX: the graph ends in {last.op_type}, not QuantizeLinear")
    g.node.remove(last)
    g.node.append(helper.make_node("Identity", [last.input[0]], ["probs"], name="probs"))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT,
                                                  [None, spec.num_classes]))


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
    """int8 QDQ ONNX by onnxruntime static quantisation of the float ONNX.

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
    spec = _set_meta(proto, spec.replace(input_dtype="float32"))
    return proto.SerializeToString(), spec


def _set_meta(proto, spec: ModelSpec) -> ModelSpec:
    """Embed ``spec`` bound to the model (:func:`~fer_edge.runtime.spec_io.embed_in_onnx`);
    returns the bound spec (write it as the sidecar)."""
    return embed_in_onnx(proto, spec)
