"""Exponential moving average of a model's weights, for validation and the saved model. Heavy
tier.

The average covers every weight of the model, BatchNorm moving statistics included (averaging
only the trainable ones would pair averaged kernels with the raw model's statistics). The
decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (as
``tf.train.ExponentialMovingAverage`` with ``num_updates``), so early averages are not
dominated by the random initialisation. The shadow weights and the update count live in
``tf.Variable``s tracked by the run's checkpoint, so ``--resume`` continues the same average.
"""

from __future__ import annotations

import contextlib

from fer_edge.train._keras import keras, tf


class WeightEMA(tf.Module):
    """Shadow copy of ``model.weights`` updated after every train step."""

    def __init__(self, model: keras.Model, decay: float):
        super().__init__(name="weight_ema")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self._model_weights = list(model.weights)
        self.shadow = [tf.Variable(w, trainable=False, name=f"ema_{i}")
                       for i, w in enumerate(self._model_weights)]
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates")

    @tf.function
    def update(self) -> None:
        """One EMA step: shadow = d * shadow + (1 - d) * weights."""
        n = tf.cast(self.updates, tf.float32)
        d = tf.minimum(self.decay, (1.0 + n) / (10.0 + n))
        for s, w in zip(self.shadow, self._model_weights):
            s.assign(d * s + (1.0 - d) * tf.cast(w, s.dtype))
        self.updates.assign_add(1)

    def reset(self) -> None:
        """Start the average again from the model's current weights."""
        for s, w in zip(self.shadow, self._model_weights):
            s.assign(w)
        self.updates.assign(0)

    @tf.function
    def _swap(self) -> None:
        for s, w in zip(self.shadow, self._model_weights):
            tmp = tf.identity(w)
            w.assign(s)
            s.assign(tmp)

    @contextlib.contextmanager
    def averaged(self):
        """Within the block the model holds the averaged weights; the raw ones come back."""
        self._swap()
        try:
            yield
        finally:
            self._swap()


class EMACallback(keras.callbacks.Callback):
    """Updates a :class:`WeightEMA` after every train batch."""

    def __init__(self, ema: WeightEMA):
        super().__init__()
        self.ema = ema

    def on_train_batch_end(self, batch, logs=None):
        self.ema.update()


def evaluate_dataset(model: keras.Model, ds: tf.data.Dataset) -> dict[str, float]:
    """Cross-entropy loss and accuracy of ``model`` on a dataset of (x, one-hot y).

    Returns:
        ``{"val_loss": float, "val_accuracy": float}`` (argmax of y vs argmax of the model).
    """
    @tf.function
    def step(x, y):
        p = model(x, training=False)
        loss = keras.losses.categorical_crossentropy(y, p)
        ok = tf.cast(tf.equal(tf.argmax(p, 1), tf.argmax(y, 1)), tf.float32)
        return tf.reduce_sum(loss), tf.reduce_sum(ok), tf.cast(tf.shape(y)[0], tf.float32)

    tot_loss = tot_ok = n = 0.0
    for batch in ds:
        lo, ok, k = step(batch[0], batch[1])
        tot_loss, tot_ok, n = tot_loss + float(lo), tot_ok + float(ok), n + float(k)
    n = max(n, 1.0)
    return {"val_loss": tot_loss / n, "val_accuracy": tot_ok / n}
