"""Model construction and the freeze/unfreeze rules of the two training stages. Heavy tier."""

from __future__ import annotations

from pathlib import Path

from fer_edge.errors import ConfigError, FerEdgeError, ModelFileError
from fer_edge.spec import ModelSpec
from fer_edge.train._keras import keras
from fer_edge.train.backbones import block_ends, build_backbone, get_backbone, mode_normalisation

#: the global-average-pooling layer whose output, the pooled face features, feeds the head;
#: `fer-edge convert` exports it as every build's second output (the embedding)
POOL_LAYER = "avg_pool"
HEAD_LAYERS = (POOL_LAYER, "head_dropout", "probs")


def build_model(spec: ModelSpec, weights: str = "none", dropout: float = 0.5,
                bn_momentum: float | None = None) -> keras.Model:
    """Build the classifier as ONE flat functional model (tfmot cannot quantize nested models).

    Args:
        spec: input size/channels, number of classes and ``arch`` (a name of
            :data:`fer_edge.train.backbones.BACKBONES`). Its normalisation must be the arch's
            (:func:`arch_normalisation`).
        weights: "imagenet" (Keras downloads and caches it), "none" (random init) or a path
            to a local weights file of the application with ``include_top=False``
            (``tiny_cnn``: a saved fer-edge model, loaded by layer name).
        dropout: dropout rate before the softmax head.
        bn_momentum: if given, the momentum of every BatchNormalization layer.

    Returns:
        Model taking (N, S, S, C) float32 NHWC in the spec's normalised range and returning
        (N, num_classes) float32 softmax probabilities. Input layer ``image``, output layer
        ``probs``.
    """
    get_backbone(spec.arch)
    inp = keras.Input((spec.input_size, spec.input_size, spec.channels), name="image")
    if spec.arch == "tiny_cnn":  # test-size stand-in with the same interface
        x = inp
        for i, filters in enumerate((16, 32, 48), start=1):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"block{i}_conv")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{i}_bn")(x)
            x = keras.layers.Activation("relu", name=f"block{i}_relu")(x)
            x = keras.layers.MaxPooling2D(2, name=f"mixed{i - 1}")(x)
    else:
        if spec.channels != 3:
            raise ConfigError(f"{spec.arch} takes 3 input channels, the spec has "
                              f"{spec.channels}")
        w = _resolve_weights(weights)
        try:
            inp, x, _, _ = build_backbone(inp, spec.arch, w)
        except FerEdgeError:
            raise
        except Exception as exc:  # Keras raises bare Exception on a failed download
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            if w == "imagenet":
                raise ModelFileError(
                    f"could not download the ImageNet weights for {spec.arch} "
                    f"({first[:120]}); without internet pass --weights none or --weights "
                    f"PATH to a local {spec.arch} include_top=False weights file") from None
            raise ModelFileError(f"{weights}: cannot load as {spec.arch} include_top=False "
                                 f"weights ({first[:160]})") from None
    x = keras.layers.GlobalAveragePooling2D(name=POOL_LAYER)(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    out = keras.layers.Dense(spec.num_classes, activation="softmax", dtype="float32",
                             name="probs")(x)
    model = keras.Model(inp, out, name=f"fer_{spec.arch}")
    if bn_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    if spec.arch == "tiny_cnn" and weights not in ("none", "", None):
        path = _resolve_weights(weights)
        if path == "imagenet":
            raise ConfigError(f"no ImageNet weights exist for {spec.arch}")
        # backbone layers by name from a saved model of the same arch; the head is new
        model.load_weights(path, by_name=True, skip_mismatch=True)
    return model


def arch_normalisation(arch: str, weights: str = "none") -> tuple[tuple[float, ...],
                                                                  tuple[float, ...]]:
    """Per-channel (norm_scale, norm_offset) that ``arch`` built with ``weights`` expects from
    grey pixels in [0, 255] (what goes into the spec). For archs whose application carries its
    own preprocessing layers (EfficientNet) this builds the application once at its minimum
    size to read them.
    """
    b = get_backbone(arch)
    if b.mode != "raw":
        return mode_normalisation(b.mode)
    inp = keras.Input((b.min_size, b.min_size, 3), name="image")
    _, _, scale, offset = build_backbone(inp, arch, _resolve_weights(weights))
    keras.backend.clear_session()
    return scale, offset


def _resolve_weights(weights: str) -> str | None:
    if weights in ("none", "", None):
        return None
    if weights == "imagenet":
        return "imagenet"
    p = Path(weights)
    if not p.is_file():
        raise ModelFileError(f"{weights}: weights file not found (use imagenet, none or a path "
                             "to a local include_top=False weights .h5)")
    return str(p)


def block_boundaries(model: keras.Model, arch: str | None = None) -> list[int]:
    """Index of the last layer of each block (InceptionV3: ``mixed0`` .. ``mixed10``; other
    archs: see the registry's ``block_pattern``), bottom to top."""
    arch = arch or model.name.removeprefix("fer_")
    return block_ends([layer.name for layer in model.layers], arch)


def set_stage(model: keras.Model, stage: str, unfreeze_blocks: int = -1,
              freeze_bn: bool = False) -> dict[str, int]:
    """Set which layers train in a stage.

    Args:
        model: from :func:`build_model`.
        stage: "head" (transfer learning: base frozen, head trains) or "finetune".
        unfreeze_blocks: finetune only: top N blocks train (-1 or >= number of blocks: all).
        freeze_bn: finetune only: keep BatchNorm layers frozen, i.e. in inference mode (the
            usual rule when fine-tuning pretrained weights on a small dataset).

    Returns:
        Counts: ``trainable_layers`` and ``trainable_params``.
    """
    bounds = block_boundaries(model)
    if stage == "head":
        first = next(i for i, layer in enumerate(model.layers) if layer.name in HEAD_LAYERS)
    elif stage == "finetune":
        if unfreeze_blocks < 0 or unfreeze_blocks >= len(bounds):
            first = 0
        elif unfreeze_blocks == 0:
            first = next(i for i, layer in enumerate(model.layers) if layer.name in HEAD_LAYERS)
        else:
            first = bounds[len(bounds) - unfreeze_blocks - 1] + 1
    else:
        raise ValueError(stage)
    for i, layer in enumerate(model.layers):
        train = i >= first
        if stage == "finetune" and freeze_bn and isinstance(layer,
                                                            keras.layers.BatchNormalization):
            train = False
        layer.trainable = train
    n_params = int(sum(int(w.shape.num_elements()) for w in model.trainable_weights))
    n_layers = sum(1 for layer in model.layers if layer.trainable and layer.weights)
    return {"trainable_layers": n_layers, "trainable_params": n_params}
