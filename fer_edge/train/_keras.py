"""``keras`` and ``tf`` for every heavy module, with fer-edge's own layers registered. Heavy
tier.

Keras is picked and TensorFlow imported (quietly) in :mod:`fer_edge.train.backend`; importing
:mod:`fer_edge.train.layers` here registers the custom layers, so any module that loads a saved
fer-edge model has them.
"""

from __future__ import annotations

from fer_edge.train import layers as _layers  # noqa: F401  (registers custom layers)
from fer_edge.train.backend import keras, tf

__all__ = ["keras", "tf"]
