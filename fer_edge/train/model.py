"""Model construction and the freeze/unfreeze rules of the two training stages. Heavy tier."""

from __future__ import annotations

from pathlib import Path

from fer_edge.errors import ConfigError, ModelFileError
from fer_edge.spec import ModelSpec
from fer_edge.train._keras import keras

#: Inception blocks of keras.applications.InceptionV3, bottom to top.
INCEPTION_BLOCKS = tuple(f"mixed{i}" for i in range(11))
HEAD_LAYERS = ("avg_pool", "head_dropout", "probs")


def build_model(spec: ModelSpec, weights: str = "none", dropout: float = 0.5,
                bn_momentum: float | None = None) -> keras.Model:
    """Build the classifier as ONE flat functional model (tfmot cannot quantize nested models).

    Args:
        spec: input size/channels, number of classes and ``arch`` ("inception_v3"|"tiny_cnn").
        weights: "imagenet" (Keras downloads and caches it), "none" (random init) or a path to
            a local InceptionV3 notop .h5.
        dropout: dropout rate before the softmax head.
        bn_momentum: if given, the momentum of every BatchNormalization layer.

    Returns:
        Model taking (N, S, S, C) float32 NHWC in the spec's normalised range ([-1, 1]) and
        returning (N, num_classes) float32 softmax probabilities. Input layer ``image``,
        output layer ``probs``.
    """
    inp = keras.Input((spec.input_size, spec.input_size, spec.channels), name="image")
    if spec.arch == "inception_v3":
        w = _resolve_weights(weights)
        try:
            base = keras.applications.InceptionV3(include_top=False, weights=w, input_tensor=inp)
        except Exception as exc:  # Keras raises bare Exception on a failed download
            if w == "imagenet":
                raise ModelFileError(
                    "could not download the ImageNet weights for InceptionV3 "
                    f"({str(exc).splitlines()[0][:120]}); without internet pass --weights none "
                    "or --weights PATH to a local inception_v3 ..._notop.h5") from None
            raise ModelFileError(f"{weights}: cannot load as InceptionV3 notop weights "
                                 f"({str(exc).splitlines()[0][:160]})") from None
        x = base.output
    elif spec.arch == "tiny_cnn":  # test-size stand-in with the same interface
        x = inp
        for i, filters in enumerate((16, 32, 48), start=1):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"block{i}_conv")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{i}_bn")(x)
            x = keras.layers.Activation("relu", name=f"block{i}_relu")(x)
            x = keras.layers.MaxPooling2D(2, name=f"mixed{i - 1}")(x)
    else:
        raise ConfigError(f"unknown arch {spec.arch!r}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    out = keras.layers.Dense(spec.num_classes, activation="softmax", dtype="float32",
                             name="probs")(x)
    model = keras.Model(inp, out, name=f"fer_{spec.arch}")
    if bn_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    if spec.arch != "inception_v3" and weights not in ("none", "", None):
        path = _resolve_weights(weights)
        if path == "imagenet":
            raise ConfigError(f"no ImageNet weights exist for {spec.arch}")
        # backbone layers by name from a saved model of the same arch; the head is new
        model.load_weights(path, by_name=True, skip_mismatch=True)
    return model


def _resolve_weights(weights: str) -> str | None:
    if weights in ("none", "", None):
        return None
    if weights == "imagenet":
        return "imagenet"
    p = Path(weights)
    if not p.is_file():
        raise ModelFileError(f"{weights}: weights file not found (use imagenet, none or a path "
                             "to an InceptionV3 notop .h5)")
    return str(p)


def block_boundaries(model: keras.Model) -> list[int]:
    """Index of the last layer of each block (``mixed0``, ``mixed1``, ...), bottom to top."""
    names = [layer.name for layer in model.layers]
    return [names.index(b) for b in INCEPTION_BLOCKS if b in names]


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
