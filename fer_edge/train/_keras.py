"""The one place that picks Keras. Heavy tier.

tensorflow-model-optimization (QAT) only works with tf_keras (Keras 2), and importing tfmot
flips ``TF_USE_LEGACY_KERAS`` itself; if anything touched ``tf.keras`` first, layers from the
two Kerases get mixed. So the variable is set here, before the first TensorFlow import, and
every heavy module imports ``keras`` and ``tf`` from this module.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]

from fer_edge.train import layers as _layers  # noqa: E402,F401  (registers custom layers)
