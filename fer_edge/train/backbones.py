"""The backbone registry: every ``--arch``, its input sizes, normalisation and blocks.

Light at import (the table and its checks need no TensorFlow); :func:`build_backbone` imports
tf_keras. Every backbone is a Keras application with ``include_top=False`` built on the
model's own input tensor, so its layers sit directly in the outer model: tfmot cannot
quantise a model nested inside another.

Normalisation never lives in the graph (a Rescaling/Normalization layer keeps the int8 TFLite
input in float or leaves ops in float, see ``convert/README.md``): it is a per-channel affine
map ``x = pixel * norm_scale + norm_offset`` recorded in the model spec and applied by the one
preprocessing path. For the grey face repeated to 3 channels:

- ``inception_v3``, ``mobilenet_v3_*`` (built with ``include_preprocessing=False``): [-1, 1]
  (Keras "tf" mode).
- ``vgg16``, ``vgg19``, ``resnet50``: Keras "caffe" mode, the ImageNet BGR channel means
  subtracted, no scaling (the grey value is the same in B, G and R).
- ``efficientnet_b0``: tf_keras always builds it with ``Rescaling(1/255)`` and
  ``Normalization`` (plus a multiply for ImageNet weights) at the bottom; they are cut out
  of the graph after the weights are loaded and their exact affine map (read from the layers,
  so ImageNet statistics when those weights are loaded) goes into the spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fer_edge.errors import ConfigError

#: ImageNet channel means in BGR order (Keras "caffe" preprocessing).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Backbone:
    """One ``--arch``.

    Attributes:
        name: the ``--arch`` value.
        app: ``tf_keras.applications`` constructor name ("" for ``tiny_cnn``).
        min_size: smallest input side the network takes.
        default_size: input side used when ``--input-size`` is not given (FER faces are 48 px;
            the Keras defaults of 224/299 would cost 10-40x the compute for no more detail).
        mode: normalisation of the application's input: "tf" ([-1, 1]), "caffe" (BGR means
            subtracted) or "raw" ([0, 255]; the application's own preprocessing layers are cut
            out and folded into the spec).
        block_pattern: regex whose group 1 names a block; a block ends at the last layer of
            that name (``--unfreeze-blocks`` counts these from the top).
        app_kwargs: extra constructor arguments.
    """

    name: str
    app: str
    min_size: int
    default_size: int
    mode: str
    block_pattern: str
    app_kwargs: tuple[tuple[str, object], ...] = ()


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("inception_v3", "InceptionV3", 75, 75, "tf", r"^(mixed\d+)$"),
    Backbone("vgg16", "VGG16", 32, 48, "caffe", r"^(block\d+)_"),
    Backbone("vgg19", "VGG19", 32, 48, "caffe", r"^(block\d+)_"),
    Backbone("resnet50", "ResNet50", 32, 64, "caffe", r"^(conv\d_block\d+)_"),
    Backbone("mobilenet_v3_small", "MobileNetV3Small", 32, 64, "tf",
             r"^(expanded_conv(?:_\d+)?)/", (("include_preprocessing", False),)),
    Backbone("mobilenet_v3_large", "MobileNetV3Large", 32, 64, "tf",
             r"^(expanded_conv(?:_\d+)?)/", (("include_preprocessing", False),)),
    Backbone("efficientnet_b0", "EfficientNetB0", 32, 64, "raw", r"^(block\d+[a-z])_"),
    # test-size stand-in with the same interface (3 conv blocks named mixed0..mixed2)
    Backbone("tiny_cnn", "", 16, 32, "tf", r"^(mixed\d+)$"),
)}

ARCHS = tuple(BACKBONES)


def get_backbone(arch: str) -> Backbone:
    """The registry entry of ``arch``; ConfigError naming the choices otherwise."""
    try:
        return BACKBONES[arch]
    except KeyError:
        raise ConfigError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}") from None


def check_input_size(arch: str, size: int) -> int:
    """The input side to use: ``size``, or the arch's default when 0; ConfigError below the
    arch's minimum."""
    b = get_backbone(arch)
    if size == 0:
        return b.default_size
    if size < b.min_size:
        raise ConfigError(f"--input-size {size} is below the {arch} minimum of {b.min_size} "
                          f"(its default is {b.default_size})")
    return size


def mode_normalisation(mode: str, channels: int = 3) -> tuple[tuple[float, ...],
                                                              tuple[float, ...]]:
    """Per-channel (scale, offset) mapping grey pixels [0, 255] to a normalisation mode."""
    if mode == "tf":
        return (1.0 / 127.5,) * channels, (-1.0,) * channels
    if mode == "caffe":
        return (1.0,) * channels, tuple(-m for m in CAFFE_MEAN_BGR[:channels])
    if mode == "raw":
        return (1.0,) * channels, (0.0,) * channels
    raise ValueError(mode)


def block_ends(layer_names: list[str], arch: str) -> list[int]:
    """Index of the last layer of each block, bottom to top."""
    pat = re.compile(get_backbone(arch).block_pattern)
    last: dict[str, int] = {}
    for i, name in enumerate(layer_names):
        m = pat.match(name)
        if m:
            last[m.group(1)] = i
    return sorted(last.values())


#: layer types an application may put at its bottom to normalise its input
_PREPROCESSING = ("Rescaling", "Normalization", "TFOpLambda")


def build_backbone(inp, arch: str, weights: str | None):
    """Build ``arch``'s feature extractor on the input tensor ``inp`` (flat, no top).

    Args:
        inp: the model's Keras input tensor (N, S, S, 3) float32.
        arch: a registry name other than ``tiny_cnn``.
        weights: None (random), "imagenet" (Keras downloads it) or a path to a weights file
            of the application with ``include_top=False`` (loaded by Keras, by topology).

    Returns:
        ``(inputs, features, scale, offset)``: the Keras input tensor of the graph (``inp``, or
        a new one named like it when preprocessing layers were cut out), the feature tensor
        (N, h, w, F), and the per-channel normalisation (tuples of 3 floats) the graph expects
        from grey pixels in [0, 255].
    """
    from fer_edge.train._keras import keras

    b = get_backbone(arch)
    ctor = getattr(keras.applications, b.app)
    app = ctor(include_top=False, weights=weights, input_tensor=inp, **dict(b.app_kwargs))
    scale, offset = mode_normalisation(b.mode)
    cut = _leading_preprocessing(app)
    if cut:
        a_scale, a_offset = _affine_of(app, cut[-1])
        scale = tuple(s * a for s, a in zip(scale, a_scale))
        offset = tuple(o * a + c for o, a, c in zip(offset, a_scale, a_offset))
        app = _without_layers(app, cut)
    fused = _split_conv_swish(_fuse_hard_sigmoid(app))
    if fused is app and not cut:
        return inp, app.output, scale, offset
    return fused.input, fused.output, scale, offset


def _leading_preprocessing(app) -> list[str]:
    """Names of the chain of preprocessing layers right after the input (bottom first)."""
    names = []
    layer = app.layers[0]
    while True:
        nxt = [n.outbound_layer for n in layer._outbound_nodes]
        if len(nxt) != 1 or type(nxt[0]).__name__ not in _PREPROCESSING:
            return names
        layer = nxt[0]
        names.append(layer.name)


def _affine_of(app, last: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (a, c) with f(x) = a x + c of the graph from the input to layer ``last``
    (exact when those layers are affine per channel, as Rescaling and Normalization are)."""
    import numpy as np

    from fer_edge.train._keras import keras

    sub = keras.Model(app.input, app.get_layer(last).output)
    shape = (1, *[int(d) for d in app.input.shape[1:]])
    f0 = np.asarray(sub(np.zeros(shape, np.float32)))[0, 0, 0]
    f1 = np.asarray(sub(np.ones(shape, np.float32)))[0, 0, 0]
    return tuple(float(v) for v in f1 - f0), tuple(float(v) for v in f0)


def _refs(node) -> list[list]:
    """The inbound references of a config node: ``[[name, node, tensor, kwargs], ...]``
    (TFOpLambda layers store a single reference unnested)."""
    return [node] if node and isinstance(node[0], str) else list(node)


def _rewire(cfg: dict, drop: dict[str, list]) -> dict:
    """Model config without the layers ``drop`` (name -> the reference that replaces it)."""
    def resolve(ref):
        while ref[0] in drop:
            ref = list(drop[ref[0]])
        return ref

    layers = []
    for layer in cfg["layers"]:
        if layer["name"] in drop:
            continue
        nodes = []
        for node in layer["inbound_nodes"]:
            refs = [[*resolve(r[:3]), *r[3:]] for r in _refs(node)]
            nodes.append(refs[0] if node and isinstance(node[0], str) else refs)
        layers.append({**layer, "inbound_nodes": nodes})
    out = {**cfg, "layers": layers}
    for key in ("input_layers", "output_layers"):
        out[key] = [resolve(r) for r in cfg[key]]
    return out


def _rebuild(app, cfg: dict):
    """A model from the edited config ``cfg`` of ``app``, with ``app``'s weights by name."""
    from fer_edge.train._keras import keras
    from fer_edge.train.layers import HardSigmoid, HardSwish

    model = keras.Model.from_config(cfg, custom_objects={"HardSigmoid": HardSigmoid,
                                                         "HardSwish": HardSwish})
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(app.get_layer(layer.name).get_weights())
    return model


def _without_layers(app, names: list[str]):
    """A copy of the functional ``app`` with the single-input layers ``names`` removed (their
    readers read what they read), every other layer's weights kept."""
    cfg = app.get_config()
    drop = {layer["name"]: _refs(layer["inbound_nodes"][0])[0][:3]
            for layer in cfg["layers"] if layer["name"] in set(names)}
    return _rebuild(app, _rewire(cfg, drop))


def _fuse_hard_sigmoid(app):
    """Replace every ``x + 3 -> ReLU(6) -> * (1/6)`` chain of TFOpLambda layers (tf_keras's
    MobileNetV3 hard sigmoid) by one :class:`~fer_edge.train.layers.HardSigmoid` layer."""
    cfg = app.get_config()
    by_name = {layer["name"]: layer for layer in cfg["layers"]}
    readers: dict[str, list[str]] = {}
    for layer in cfg["layers"]:
        for node in layer["inbound_nodes"]:
            for r in _refs(node):
                readers.setdefault(r[0], []).append(layer["name"])

    def only_reader(name, cls, **want):
        nxt = readers.get(name, [])
        if len(nxt) != 1 or by_name[nxt[0]]["class_name"] != cls:
            return None
        layer = by_name[nxt[0]]
        return layer if all(layer["config"].get(k) == v for k, v in want.items()) else None

    drop, new = _hard_sigmoids(cfg, only_reader)
    if not new:
        return app
    _hard_swishes(cfg, by_name, readers, drop, new)
    cfg = _rewire(cfg, drop)
    cfg["layers"] = [new.get(layer["name"], layer) for layer in cfg["layers"]]
    return _rebuild(app, cfg)


def _hard_sigmoids(cfg: dict, only_reader) -> tuple[dict, dict]:
    """(layers to drop -> the ref their readers read instead, mul layer name -> its new
    HardSigmoid layer config) for every ``x + 3 -> ReLU(6) -> * (1/6)`` chain."""
    drop, new = {}, {}
    for layer in cfg["layers"]:
        if layer["class_name"] != "TFOpLambda" or layer["config"].get(
                "function") != "__operators__.add":
            continue
        (ref,) = _refs(layer["inbound_nodes"][0])
        if ref[3].get("y") != 3.0:
            continue
        relu = only_reader(layer["name"], "ReLU", max_value=6.0)
        mul = relu and only_reader(relu["name"], "TFOpLambda", function="math.multiply")
        if not mul or abs(_refs(mul["inbound_nodes"][0])[0][3].get("y", 0) - 1 / 6) > 1e-9:
            continue
        drop[layer["name"]] = ref[:3]
        drop[relu["name"]] = ref[:3]
        new[mul["name"]] = {"class_name": "HardSigmoid", "name": mul["name"],
                            "config": {"name": mul["name"], "trainable": True,
                                       "dtype": "float32"},
                            "inbound_nodes": [[[*ref[:3], {}]]]}
    return drop, new


def _hard_swishes(cfg: dict, by_name: dict, readers: dict, drop: dict, new: dict) -> None:
    """Hard swish, ``Multiply([x, HardSigmoid(x)])``, becomes one HardSwish(x) (in place)."""
    for layer in cfg["layers"]:
        if layer["class_name"] != "Multiply":
            continue
        a, b = (r[0] for r in _refs(layer["inbound_nodes"][0]))
        hs = new.get(b)
        if hs is None or readers.get(b) != [layer["name"]] or drop_src(hs) != a:
            continue
        del new[b]
        drop[b] = drop[_chain_start(b, by_name, readers)]
        new[layer["name"]] = {**hs, "class_name": "HardSwish", "name": layer["name"],
                              "config": {**hs["config"], "name": layer["name"]}}


def _split_conv_swish(app):
    """Conv2D(activation="swish") -> Conv2D + Activation("swish") (EfficientNet's
    squeeze-excite reduce convs): tfmot gives a conv's built-in swish no output range, so the
    TFLite build ran it, and the conv after it, in float; a separate swish layer is int8."""
    cfg = app.get_config()
    acts, out = {}, []
    for layer in cfg["layers"]:
        if layer["class_name"] == "Conv2D" and layer["config"].get("activation") == "swish":
            name = layer["name"]
            conv = {**layer, "config": {**layer["config"], "activation": "linear"}}
            act = f"{name}_swish"
            out += [conv, {"class_name": "Activation", "name": act,
                           "config": {"name": act, "trainable": True, "dtype": "float32",
                                      "activation": "swish"},
                           "inbound_nodes": [[[name, 0, 0, {}]]]}]
            acts[name] = act
        else:
            out.append(layer)
    if not acts:
        return app
    for layer in out:  # readers of each conv now read its activation
        if layer["name"] in acts.values():
            continue
        nodes = []
        for node in layer["inbound_nodes"]:
            refs = [[acts.get(r[0], r[0]), *r[1:]] for r in _refs(node)]
            nodes.append(refs[0] if node and isinstance(node[0], str) else refs)
        layer["inbound_nodes"] = nodes
    outputs = [[acts.get(r[0], r[0]), *r[1:]] for r in cfg["output_layers"]]
    return _rebuild(app, {**cfg, "layers": out, "output_layers": outputs})


def drop_src(layer_cfg: dict) -> str:
    """Name of the layer a new single-input layer config reads."""
    return _refs(layer_cfg["inbound_nodes"][0])[0][0]


def _chain_start(mul_name: str, by_name: dict, readers: dict) -> str:
    """The ``x + 3`` layer of the hard-sigmoid chain ending at ``mul_name``."""
    relu = _refs(by_name[mul_name]["inbound_nodes"][0])[0][0]
    return _refs(by_name[relu]["inbound_nodes"][0])[0][0]
