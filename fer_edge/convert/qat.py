"""Quantization-aware training with tensorflow-model-optimization. Heavy tier.

Recipe (measured; the reasons are in convert/README.md): the model has no Rescaling layer
(normalisation stays in the spec), every layer is annotated with tfmot's default 8-bit
scheme, and MaxPooling2D gets an output-only quantizer, without which the convolutions that
read its output stay float in the TFLite build.
"""

from __future__ import annotations

import functools
import logging
import time

import numpy as np

from fer_edge.train._keras import keras
from fer_edge.train.layers import HardSigmoid, HardSwish

log = logging.getLogger(__name__)


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras


@functools.cache
def output_only_config():
    """QuantizeConfig for weight-less layers: quantize the output only.

    One class per process: a second definition made AutoGraph call the methods of the first
    one's converted code (a second QAT model in a process that had converted one to TFLite
    failed to build).
    """
    tq = _tfmot()

    class OutputOnlyQuantizeConfig(tq.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [tq.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    return OutputOnlyQuantizeConfig


def _scope_objects() -> dict:
    return {"OutputOnlyQuantizeConfig": output_only_config(), "HardSigmoid": HardSigmoid,
            "HardSwish": HardSwish}


def quantize_scope():
    """Context for loading a saved QAT model."""
    return _tfmot().quantize_scope(_scope_objects())


#: weight-less layers tfmot's default 8-bit scheme leaves unquantised (or rejects), given an
#: output quantizer so every tensor has an int8 range: MaxPooling2D (without it the convs
#: reading it stay float), Multiply (squeeze-excite and hard-swish products: "Layer ...
#: Multiply is not supported") and MobileNetV3's HardSigmoid and HardSwish.
_OUTPUT_ONLY = (keras.layers.MaxPooling2D, keras.layers.Multiply, keras.layers.Reshape,
                HardSigmoid, HardSwish)


def build_qat_model(float_model: keras.Model) -> keras.Model:
    """Wrap a flat float model for QAT, starting from its weights."""
    tq = _tfmot()
    cfg_cls = output_only_config()

    def annotate(layer):
        if isinstance(layer, HardSigmoid):  # its inner relu6 gets a fixed int8 range
            layer = HardSigmoid.from_config({**layer.get_config(), "fixed_quant": True})
        if isinstance(layer, _OUTPUT_ONLY):
            return tq.quantize_annotate_layer(layer, cfg_cls())
        return tq.quantize_annotate_layer(layer)

    with tq.quantize_scope(_scope_objects()):
        annotated = keras.models.clone_model(float_model, clone_function=annotate)
    annotated.set_weights(float_model.get_weights())  # clone_model re-initialises weights
    with tq.quantize_scope(_scope_objects()):
        qat = tq.quantize_apply(annotated)
    fix_concat_order(qat, float_model)
    return qat


_CHANNELWISE = (keras.layers.AveragePooling2D, keras.layers.MaxPooling2D,
                keras.layers.GlobalAveragePooling2D, keras.layers.Dropout,
                keras.layers.Activation, keras.layers.ReLU)


def _inbound(layer) -> list:
    src = layer._inbound_nodes[0].inbound_layers
    return list(src) if isinstance(src, (list, tuple)) else [src]


def _kernel_var(layer, name: str = "kernel"):
    """The kernel *variable* ``name`` ("kernel", or "depthwise_kernel" of a DepthwiseConv2D;
    a QuantizeWrapper swaps ``layer.kernel`` for its quantized tensor)."""
    for w in layer.weights:
        if w.name.split("/")[-1] == f"{name}:0":
            return w
    raise RuntimeError(f"{layer.name}: no {name} variable")


def _inner(layer):
    return getattr(layer, "layer", layer)


def fix_concat_order(qat_model: keras.Model, float_model: keras.Model, prefix: str = "quant_"
                     ) -> int:
    """Undo tfmot's reordering of Concatenate inputs by permuting what reads the concat.

    ``quantize_apply`` (tfmot 0.8.1) rebuilds some Concatenate layers with their inputs in
    another order: in InceptionV3 ``mixed3`` and ``mixed8`` (the max-pool branch moves first)
    and ``mixed9``/``mixed10``. The QAT model then feeds scrambled channels to every layer
    after them (a trained FER model fell to chance before QAT and to 51 % after it). Each
    Conv2D/Dense that reads such a concat, directly or through channel-wise layers (pooling,
    dropout, activation), gets its kernel's input channels permuted to the new order, which
    makes the QAT model compute exactly what the float model does.

    Returns:
        How many kernels were permuted.
    """

    fixed = 0
    for layer in float_model.layers:
        if not isinstance(layer, keras.layers.Concatenate):
            continue
        want = [src.name for src in _inbound(layer)]
        q_concat = qat_model.get_layer(prefix + layer.name)
        got = [_inner(src).name for src in _inbound(q_concat)]
        if got == want:
            continue
        if sorted(got) != sorted(want):
            raise RuntimeError(f"QAT model: {layer.name} inputs {got} are not {want}")
        widths = {src.name: int(src.output.shape[-1]) for src in _inbound(layer)}
        start, pos = 0, {}
        for name in want:
            pos[name] = np.arange(start, start + widths[name])
            start += widths[name]
        perm = np.concatenate([pos[name] for name in got])  # new channel k = old perm[k]
        todo = [q_concat]
        while todo:
            cur = todo.pop()
            for out in cur._outbound_nodes:
                nxt = out.outbound_layer
                inner = _inner(nxt)
                if isinstance(inner, (keras.layers.Conv2D, keras.layers.Dense)):
                    k = _kernel_var(nxt)
                    k.assign(k.numpy()[..., perm, :])  # new input k = old input perm[k]
                    fixed += 1
                elif isinstance(inner, _CHANNELWISE):
                    todo.append(nxt)
                else:
                    raise RuntimeError(f"QAT model: cannot follow the reordered {layer.name} "
                                       f"into {inner.name} ({type(inner).__name__})")
    if fixed:
        log.info("QAT: tfmot reordered concat inputs; %d kernels permuted to match", fixed)
    return fixed


class _QatProgress(keras.callbacks.Callback):
    def __init__(self, steps: int, every: int = 20):
        super().__init__()
        self.steps, self.every = steps, every

    def on_epoch_begin(self, epoch, logs=None):
        self.t0, self.epoch = time.time(), epoch

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0 or batch + 1 == self.steps:
            dt = time.time() - self.t0
            log.info("QAT epoch %d step %d/%d loss %.4f acc %.4f, ETA %.0fs", self.epoch + 1,
                     batch + 1, self.steps, logs.get("loss", 0), logs.get("accuracy", 0),
                     dt / (batch + 1) * (self.steps - batch - 1))


def distillation_dataset(float_model: keras.Model, images, spec, n: int, batch_size: int,
                         seed: int = 0):
    """QAT data whose targets are the float model's own probabilities.

    QAT on the training labels is more training: it shifts the model's class balance (a
    trained FER model's int8 build lost 4.9 pp of angry and 4.0 pp of sad recall while its
    overall accuracy rose 0.1 pp). Distilling from the float model teaches the quantised model
    to predict what the float model predicts, which is what the parity gate measures.

    Args:
        float_model: the trained float model (the teacher).
        images: (N, 48, 48) uint8 grey training faces.
        spec: the model spec (input size, normalisation).
        n: how many faces to use (a random subset without replacement when fewer than N).
        batch_size: QAT batch size.
        seed: subset and shuffle seed.

    Returns:
        A repeating ``tf.data.Dataset`` of (x (B, S, S, C) float32, p (B, 7) float32), the
        faces un-augmented in the spec's normalisation.
    """
    import tensorflow as tf

    from fer_edge.preprocess import to_model_input

    rng = np.random.default_rng(seed + 2)
    pick = np.sort(rng.choice(len(images), min(n, len(images)), replace=False))
    x = to_model_input(images[pick], spec)
    log.info("QAT: distilling from the float model on %d training faces", len(x))
    p = float_model.predict(x, batch_size=256, verbose=0).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, p)).shuffle(len(x), seed=seed)
    return ds.batch(batch_size, drop_remainder=len(x) >= batch_size).repeat().prefetch(2)


def run_qat(qat_model: keras.Model, train_ds, steps: int, epochs: int, lr: float,
            label_smoothing: float = 0.0, freeze_bn: bool = True, select_x=None,
            select_ref=None) -> dict:
    """Fine-tune the fake-quantised model so its weights adapt to int8, keeping the best state.

    ``freeze_bn`` keeps every BatchNorm in inference mode with its trained moving statistics
    (as TF's own QAT recipes freeze BN after a delay).

    With ``select_x`` (held-out faces, e.g. the validation split) and ``select_ref`` (the float
    model's probabilities on them), the QAT model's argmax agreement with float is measured
    before fine-tuning and after every epoch, and the weights (quantizer ranges included) of
    the best one are kept: fine-tuning stays only where it brings the int8 model closer to
    float. On a trained FER model 300 QAT steps lowered agreement on PrivateTest from 0.987
    (calibrated ranges, no step) to 0.971 (distillation) and 0.934 (labels).

    Args:
        qat_model: from :func:`build_qat_model`, ranges calibrated.
        train_ds: repeating dataset of (x, y) with one-hot or soft y (B, 7) float32; None
            when ``epochs`` is 0.
        steps: steps per epoch.
        epochs: fine-tuning epochs (0 = none).
        lr: Adam learning rate.
        label_smoothing: for label targets.
        freeze_bn: keep BatchNorm in inference mode.
        select_x: (N, S, S, C) float32 held-out inputs, or None (keep the last epoch).
        select_ref: (N, 7) float32 float-model probabilities on ``select_x``.

    Returns:
        ``{"agreement": [after 0 epochs, after 1, ...], "kept_epoch": k}`` (agreements empty
        without selection data).
    """

    if freeze_bn:
        for layer in qat_model.layers:
            if isinstance(getattr(layer, "layer", layer), keras.layers.BatchNormalization):
                layer.trainable = False  # tf_keras: a non-trainable BN runs in inference mode
    qat_model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                      metrics=["accuracy"], jit_compile=True)
    select = select_x is not None and select_ref is not None
    want = np.argmax(select_ref, 1) if select else None

    def agreement() -> float:
        q = qat_model.predict(select_x, batch_size=256, verbose=0)
        return float(np.mean(np.argmax(q, 1) == want))

    history: list[float] = []
    best_epoch, best_weights = epochs, None
    if select:
        history.append(agreement())
        best_epoch, best_weights = 0, qat_model.get_weights()
        log.info("QAT: agreement with float on %d held-out faces before fine-tuning %.4f",
                 len(want), history[0])
    for e in range(epochs):
        qat_model.fit(train_ds, epochs=e + 1, initial_epoch=e, steps_per_epoch=steps,
                      verbose=0, callbacks=[_QatProgress(steps)])
        if select:
            history.append(agreement())
            log.info("QAT: agreement after epoch %d %.4f", e + 1, history[-1])
            if history[-1] > max(history[:-1]):
                best_epoch, best_weights = e + 1, qat_model.get_weights()
    if best_weights is not None and best_epoch != epochs:
        qat_model.set_weights(best_weights)
        log.info("QAT: keeping the state after %d epoch(s) (agreement %.4f): fine-tuning "
                 "did not bring the int8 model closer to float", best_epoch, history[best_epoch])
    return {"agreement": history, "kept_epoch": best_epoch}


def face_ranges(float_model: keras.Model, x, batch: int = 64
                ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-face min and max of every tensor a QAT quantizer watches, computed in the graph.

    Args:
        float_model: the trained float model.
        x: (N, S, S, C) float32 inputs in the spec's normalised range.
        batch: faces per forward pass (does not change the result).

    Returns:
        ``(keys, lo, hi)``: ``keys`` names the tensors ("<input>", a layer name, or
        "<dense>pre" for a Dense layer's pre-activation); ``lo`` and ``hi`` are (N, K) float32,
        each face's min and max of each tensor.
    """
    import tensorflow as tf

    keys, tensors = ["<input>"], [float_model.input]
    for layer in float_model.layers[1:]:
        keys.append(layer.name)
        tensors.append(layer.output)
        if isinstance(layer, keras.layers.Dense):  # its pre-activation: a linear copy
            linear = keras.layers.Dense(layer.units, use_bias=layer.use_bias)
            keys.append(layer.name + "<pre>")
            tensors.append(linear(layer.input))
            linear.set_weights(layer.get_weights())
    axes = lambda t: list(range(1, len(t.shape)))  # noqa: E731
    probe = keras.Model(float_model.input,
                        [keras.layers.Lambda(lambda t: tf.stack(
                            [tf.reduce_min(t, axes(t)), tf.reduce_max(t, axes(t))], -1))(t)
                         for t in tensors])
    lo, hi = [], []
    for i in range(0, len(x), batch):
        out = probe(np.asarray(x[i:i + batch], np.float32), training=False)
        out = np.stack([np.asarray(o) for o in out], 1)  # (B, K, 2)
        lo.append(out[..., 0])
        hi.append(out[..., 1])
    return keys, np.concatenate(lo), np.concatenate(hi)


_KERNEL_RANGES = ("kernel_min", "kernel_max", "depthwise_kernel_min", "depthwise_kernel_max")


def calibrate_ranges(qat_model: keras.Model, float_model: keras.Model, x,
                     batch_size: int = 8, ranges: tuple | None = None) -> int:
    """Start every quantizer at the range QAT would converge to.

    tfmot starts each moving-average quantizer at [-6, 6] and moves it by 0.1 % per step
    (EMA 0.999), so a few hundred QAT steps leave the ranges far too wide (a trained FER model
    whose last blocks output ~[0, 2.4] lost 14 pp in int8 that way). Here each range is set to
    the mean over batches of ``batch_size`` faces of the float model's per-batch min/max
    (clamped to include 0), the fixed point of tfmot's EMA at that batch size, and each kernel
    range to the kernel's symmetric range (what tfmot's first training step would set), before
    QAT starts; QAT then refines them. With that, the QAT model is evaluable from step 0 and
    starts where the float model is. Smaller batches give tighter ranges (a mean of maxima
    over fewer faces): on a FER-2013 model 8 faces gave argmax agreement 0.984 with float, 32
    gave 0.972.

    Args:
        qat_model: from :func:`build_qat_model` (wrappers named ``quant_<float layer>``).
        float_model: the float model it was built from.
        x: (N, S, S, C) float32 calibration inputs in the spec's normalised range, in the
            order they are grouped into batches.
        batch_size: faces per calibration batch.
        ranges: :func:`face_ranges` of ``x``, when already computed (``x`` is then unused).

    Returns:
        How many range variables were set.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import (
        QuantizeLayer,
    )

    keys, lo_f, hi_f = ranges if ranges is not None else face_ranges(float_model, x)
    groups = np.arange(len(lo_f)) // batch_size
    n_groups = int(groups[-1]) + 1
    lo_b = np.full((n_groups, len(keys)), np.inf, np.float32)
    hi_b = np.full((n_groups, len(keys)), -np.inf, np.float32)
    np.minimum.at(lo_b, groups, lo_f)
    np.maximum.at(hi_b, groups, hi_f)
    col = {k: i for i, k in enumerate(keys)}
    lo = np.minimum(lo_b, 0.0).mean(0)
    hi = np.maximum(hi_b, 0.0).mean(0)
    done = 0
    for wrapper in qat_model.layers:
        inner = getattr(wrapper, "layer", None)
        for v in wrapper.weights:
            leaf = v.name.split("/")[-1].split(":")[0]
            if inner is not None and leaf in _KERNEL_RANGES:
                # LastValueQuantizer only sets these in a training step; until then they
                # are [-6, 6], which rounds a trained kernel (|w| ~0.1) to zero. A
                # DepthwiseConv2D's are depthwise_kernel_min/max (missed before 2026-12-02:
                # MobileNetV3-small's int8 build lost 8.5 pp, its depthwise weights rounded
                # to 1-4 int8 levels). tfmot's per-axis range for a depthwise kernel
                # (kh, kw, C, 1) is over its last axis, the depth multiplier: one range for
                # all C channels (tensorflow/model-optimization#808), kept here as tfmot has it
                k = _kernel_var(wrapper, leaf.rsplit("_", 1)[0]).numpy()
                r = (np.abs(k).reshape(-1, k.shape[-1]).max(0) if tuple(v.shape) == (k.shape[-1],)
                     else np.abs(k).max())
                v.assign(-r if leaf.endswith("_min") else r)
                done += 1
                continue
            if isinstance(wrapper, QuantizeLayer) and leaf.endswith(("_min", "_max")):
                # named quantize_layer, quantize_layer_1, ... (one per model built in a
                # process); matching the name missed the input range of every model but the
                # first, and the input then quantized to ~nothing
                key = "<input>"
            elif inner is not None and leaf.startswith(("output_", "post_activation_")):
                key = inner.name
            elif inner is not None and leaf.startswith("pre_activation_"):
                key = inner.name + "<pre>"
            else:
                continue
            if key not in col:
                continue
            v.assign(float((lo if leaf.endswith("_min") else hi)[col[key]]))
            done += 1
    log.info("QAT: %d quantizer ranges set from %d faces in %d batches of %d", done,
             len(lo_f), n_groups, batch_size)
    return done

