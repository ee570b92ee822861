"""Quantization-aware training with tensorflow-model-optimization. Heavy tier.

Recipe from shared/notes/toolchain.md §4: the model has no Rescaling layer (normalisation stays
in the spec), every layer is annotated with tfmot's default 8-bit scheme, and MaxPooling2D gets
an output-only quantizer, without which the convolutions that read its output stay float in
the TFLite build.
"""

from __future__ import annotations

import logging
import time

from fer_edge.train._keras import keras

log = logging.getLogger(__name__)


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras


def output_only_config():
    """QuantizeConfig for weight-less layers: quantize the output only."""
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


def quantize_scope():
    """Context for loading a saved QAT model."""
    return _tfmot().quantize_scope({"OutputOnlyQuantizeConfig": output_only_config()})


def build_qat_model(float_model: keras.Model) -> keras.Model:
    """Wrap a flat float model for QAT, starting from its weights."""
    tq = _tfmot()
    cfg_cls = output_only_config()

    def annotate(layer):
        if isinstance(layer, keras.layers.MaxPooling2D):
            return tq.quantize_annotate_layer(layer, cfg_cls())
        return tq.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(float_model, clone_function=annotate)
    annotated.set_weights(float_model.get_weights())  # clone_model re-initialises weights
    with tq.quantize_scope({"OutputOnlyQuantizeConfig": cfg_cls}):
        return tq.quantize_apply(annotated)


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


def run_qat(qat_model: keras.Model, train_ds, steps: int, epochs: int, lr: float,
            label_smoothing: float = 0.0) -> keras.Model:
    """Fine-tune the fake-quantised model so its ranges calibrate (>= ~1 epoch advised)."""
    qat_model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                      metrics=["accuracy"], jit_compile=True)
    if epochs > 0:
        qat_model.fit(train_ds, epochs=epochs, steps_per_epoch=steps, verbose=0,
                      callbacks=[_QatProgress(steps)])
    return qat_model
