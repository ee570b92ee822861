"""fer-edge's own Keras layers (registered for loading saved models). Heavy tier.

Imported by :mod:`fer_edge.train._keras`, so any module that loads a saved fer-edge model has
them registered.
"""

from __future__ import annotations

from fer_edge.train.backend import keras, tf


@keras.saving.register_keras_serializable(package="fer_edge")
class HardSigmoid(keras.layers.Layer):
    """``relu6(x + 3) / 6`` as one layer (MobileNetV3's hard sigmoid).

    tf_keras builds it from two ``TFOpLambda`` layers around a ``ReLU``, which tfmot cannot
    clone for quantization-aware training; as one layer it takes an output quantizer.
    With ``fixed_quant`` (the QAT copy) the ``relu6(x + 3)`` inside is fake-quantised to its
    fixed range [0, 6], so the TFLite converter has an int8 range for it and the ADD and MUL
    run in int8 instead of falling back to float. Shape-preserving, float32.
    """

    def __init__(self, fixed_quant: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.fixed_quant = fixed_quant

    def call(self, x):
        y = tf.nn.relu6(x + 3.0)
        if self.fixed_quant:
            y = tf.quantization.fake_quant_with_min_max_args(y, 0.0, 6.0, num_bits=8)
        return y * (1.0 / 6.0)

    def get_config(self):
        return {**super().get_config(), "fixed_quant": self.fixed_quant}

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="fer_edge")
class HardSwish(keras.layers.Layer):
    """``x * relu6(x + 3) / 6`` as one layer (MobileNetV3's hard swish).

    One layer with one output quantizer lets the TFLite converter fuse it into its int8
    ``HARD_SWISH`` kernel; as separate layers the intermediate tensors have no int8 range and
    stay float. Shape-preserving, float32.
    """

    def call(self, x):
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

    def compute_output_shape(self, input_shape):
        return input_shape
