"""Recover a trainable float Keras model from a fer-edge int8 TFLite build.

The packaged default model's float weights were never kept (its run folder went with its
machine), so it could not be a starting point for further training (``fer-edge train
--init``). Its int8 TFLite still holds every weight: each Conv2D with its BatchNormalization
folded in (int8 kernel, per-output-channel scale; int32 bias) and the int8 softmax head.
This script builds the same architecture with :func:`fer_edge.train.model.build_model` from
the build's embedded spec and writes the dequantised weights into it:

- Conv2D kernel = int8 kernel x its per-channel scale ((O, kh, kw, I) -> (kh, kw, I, O));
- the BatchNormalization after it becomes the identity plus the folded bias (moving mean 0,
  moving variance 1 - epsilon, beta = int32 bias x its scale; InceptionV3's BN has no gamma);
- Dense ``probs`` = dequantised kernel and bias.

The result computes the int8 model's function with float activations (only weight rounding
remains), which the script checks on real faces against the int8 build (argmax agreement and
accuracy of both). BatchNorm must stay frozen (inference mode) when training from it: the
folded statistics are not the batch statistics (``fer-edge train --init OUT --freeze-bn yes``).

    python convert/recover_float.py fer_edge/assets/fer_default_int8.tflite OUT_DIR \\
        --data ../shared/data/fer2013.npz --check 1000

Writes ``OUT_DIR/model_float.h5`` and ``OUT_DIR/spec.json`` (the build's spec, its ``extra``
noting where the weights came from, without the build's ``embedding`` entry: the float model
has the probability output only, as a training run's). A build with an embedding output
(schema 2) reads like one without: the embedding is the pooling layer's output, not a layer
with weights. Heavy tier (TensorFlow).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tflite_weights(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[str]]]:
    """Dequantised weights of every CONV_2D / DEPTHWISE / FULLY_CONNECTED op, keyed by the
    Keras layer name read from the TFLite tensor names (``<model>/quant_<layer>/...``), and
    the input order of every CONCATENATION (tfmot's QAT graph may put a branch first that
    Keras has last, e.g. InceptionV3's max-pool branch of ``mixed3``/``mixed8``; the consumers'
    kernels then take their input channels in that order).

    Returns:
        ``({layer: {"kernel": float32 in TFLite layout, "bias": float32 (O,)}},
        {concat layer: [input layer names in TFLite order]})``.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    it.allocate_tensors()
    details = {t["index"]: t for t in it.get_tensor_details()}
    out: dict[str, dict[str, np.ndarray]] = {}
    concats: dict[str, list[str]] = {}
    for op in it._get_ops_details():
        if op["op_name"] == "CONCATENATION":
            name = _layer_name(details[op["outputs"][0]]["name"])
            concats[name] = [_layer_name(details[i]["name"]) for i in op["inputs"]]
            continue
        if op["op_name"] not in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D"):
            continue
        w_i, b_i = op["inputs"][1], op["inputs"][2]
        w, b = details[w_i], details[b_i]
        name = _layer_name(w["name"])
        q = w["quantization_parameters"]
        scales = np.asarray(q["scales"], np.float64)
        kernel = it.get_tensor(w_i).astype(np.float64)
        shape = (-1,) + (1,) * (kernel.ndim - 1) if op["op_name"] != "DEPTHWISE_CONV_2D" else (
            (1,) * (kernel.ndim - 1) + (-1,))
        kernel = kernel * scales.reshape(shape) if scales.size > 1 else kernel * scales[0]
        bq = b["quantization_parameters"]
        bias = it.get_tensor(b_i).astype(np.float64) * np.asarray(bq["scales"], np.float64)
        out[name] = {"kernel": kernel.astype(np.float32), "bias": bias.astype(np.float32),
                     "op": op["op_name"]}
    return out, concats


def _channel_positions(model, concats: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """For each Keras layer: where each of its output channels sits in the TFLite tensor
    (``pos[k]`` = TFLite channel of Keras channel k), through the concatenations' orders."""
    from fer_edge.train._keras import keras

    pos: dict[str, np.ndarray] = {}
    for layer in model.layers:
        c = int(layer.output.shape[-1])
        inbound = [n.inbound_layers for n in layer.inbound_nodes]
        srcs = inbound[0] if inbound else []
        srcs = srcs if isinstance(srcs, list) else [srcs]
        if isinstance(layer, keras.layers.Concatenate):
            order = concats.get(layer.name)
            names = [s.name for s in srcs]
            if order is None or sorted(order) != sorted(names):
                raise SystemExit(f"{layer.name}: TFLite concatenation inputs {order} do not "
                                 f"match the Keras inputs {names}")
            width = {s.name: int(s.output.shape[-1]) for s in srcs}
            offset, off = {}, 0
            for n in order:
                offset[n] = off
                off += width[n]
            pos[layer.name] = np.concatenate([offset[s.name] + pos[s.name] for s in srcs])
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.Dense) or not srcs:
            pos[layer.name] = np.arange(c)
        else:
            pos[layer.name] = pos[srcs[0].name]
    return pos


def _layer_name(tensor_name: str) -> str:
    """``fer_inception_v3/quant_conv2d_5/Conv2D;...`` -> ``conv2d_5``."""
    first = tensor_name.split(";")[0]
    parts = first.split("/")
    for p in parts:
        if p.startswith("quant_"):
            return p[len("quant_"):]
    raise ValueError(f"cannot read a layer name from TFLite tensor {tensor_name!r}")


def recover(build: Path):
    """(float Keras model, spec) with the int8 build's weights. See the module docstring."""
    from fer_edge.runtime.spec_io import read_tflite_spec
    from fer_edge.train._keras import keras
    from fer_edge.train.model import build_model

    spec = read_tflite_spec(build.read_bytes(), str(build))
    if spec is None:
        raise SystemExit(f"{build}: no embedded fer-edge spec; is it a fer-edge build?")
    weights, concats = tflite_weights(build)
    keras.backend.clear_session()  # layer names from conv2d, as in the process that built it
    model = build_model(spec, "none", dropout=0.4)
    layers = model.layers
    pos = _channel_positions(model, concats)
    used = set()
    for layer in layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            if layer.name not in weights:
                raise SystemExit(f"{build}: no weights for layer {layer.name} (a model built "
                                 "in another naming order?)")
            w = weights[layer.name]
            used.add(layer.name)
            k = w["kernel"]
            kernel = np.transpose(k, (1, 2, 3, 0)) if k.ndim == 4 else k.T
            src = layer.inbound_nodes[0].inbound_layers
            kernel = np.take(kernel, pos[src.name], axis=-2)  # input channels, Keras order
            if tuple(kernel.shape) != tuple(layer.kernel.shape):
                raise SystemExit(f"{layer.name}: kernel {kernel.shape} vs {layer.kernel.shape}")
            if layer.use_bias:
                layer.set_weights([kernel, w["bias"]])
                continue
            layer.set_weights([kernel])
            nxt = [node.outbound_layer for node in layer.outbound_nodes]
            bn = nxt[0] if len(nxt) == 1 else None
            if not isinstance(bn, keras.layers.BatchNormalization) or bn.scale:
                raise SystemExit(f"{layer.name}: expected a BatchNormalization without gamma "
                                 "after a bias-free Conv2D (InceptionV3's conv2d_bn)")
            n = kernel.shape[-1]
            bn.set_weights([w["bias"], np.zeros(n, np.float32),
                            np.full(n, 1.0 - bn.epsilon, np.float32)])
    missing = set(weights) - used
    if missing:
        raise SystemExit(f"{build}: TFLite weights with no Keras layer: {sorted(missing)[:5]}")
    src = hashlib.sha256(build.read_bytes()).hexdigest()
    # a training run's spec: the float model has one output (``fer-edge convert`` adds the
    # embedding output, and its spec entry, to every build it makes from it)
    spec = spec.replace(extra={**spec.extra, "recovered_from": build.name,
                               "recovered_from_sha256": src}, sha256="", embedding=None)
    return model, spec


def check(model, spec, build: Path, data: str, n: int) -> dict:
    """Float recovered vs the int8 build on the first n PrivateTest faces (no flip TTA)."""
    from fer_edge.data.readers import load_dataset
    from fer_edge.preprocess import to_model_input
    from fer_edge.runtime import load_predictor

    ds = load_dataset(data)
    faces, labels = ds.images["test"][:n], ds.labels["test"][:n]
    x = to_model_input(faces, spec)
    p_float = model.predict(x, batch_size=128, verbose=0)
    rt = load_predictor(build, num_threads=1)
    p_int8 = np.concatenate([rt.predict(faces[i:i + 64], tta_flip=False)
                             for i in range(0, len(faces), 64)])
    return {"faces": len(faces),
            "agreement": float(np.mean(p_float.argmax(1) == p_int8.argmax(1))),
            "float_accuracy": float(np.mean(p_float.argmax(1) == labels)),
            "int8_accuracy": float(np.mean(p_int8.argmax(1) == labels)),
            "max_abs_dp": float(np.abs(p_float - p_int8).max())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("build", help="a fer-edge int8 .tflite (e.g. fer_edge/assets/...)")
    p.add_argument("out", help="new folder for model_float.h5 + spec.json")
    p.add_argument("--data", default="", help="fer2013.npz/.csv for the agreement check")
    p.add_argument("--check", type=int, default=1000, help="PrivateTest faces to check")
    a = p.parse_args(argv)
    out = Path(a.out)
    if out.exists():
        raise SystemExit(f"{out} exists; give a new folder")
    model, spec = recover(Path(a.build))
    out.mkdir(parents=True)
    model.save(str(out / "model_float.h5"))
    spec.write(out / "spec.json")
    print(f"wrote {out / 'model_float.h5'} and spec.json")
    if a.data:
        facts = check(model, spec, Path(a.build), a.data, a.check)
        (out / "check.json").write_text(json.dumps(facts, indent=1) + "\n")
        print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
