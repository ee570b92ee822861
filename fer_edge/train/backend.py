"""The one place that picks Keras and imports TensorFlow. Heavy tier.

tensorflow-model-optimization (QAT) only works with tf_keras (Keras 2), and importing tfmot
flips ``TF_USE_LEGACY_KERAS`` itself; if anything touched ``tf.keras`` first, layers from the
two Kerases get mixed. So the variable is set here, before the first TensorFlow import.
Heavy modules import ``keras`` and ``tf`` from :mod:`fer_edge.train._keras` (this plus
fer-edge's registered layers); :mod:`fer_edge.train.layers` imports them from here, below it.

TensorFlow's start-up lines (cuInit, oneDNN, absl) are kept off the terminal unless ``-v``
(:mod:`fer_edge.quiet`).
"""

from __future__ import annotations

import os

from fer_edge.quiet import native_noise_filtered, verbose

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose() else "2")

with native_noise_filtered():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    tf.config.list_physical_devices("GPU")  # cuInit runs (and complains) here, filtered

__all__ = ["keras", "tf"]
