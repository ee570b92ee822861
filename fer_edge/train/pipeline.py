"""tf.data input pipeline for training and evaluation. Heavy tier.

Faces are resized once with :func:`fer_edge.preprocess.resize_faces` (the same code the demo
uses) into an in-memory float32 cache; the graph then gathers a batch, augments it (train only)
with one batched affine warp plus brightness/contrast, and applies the spec's normalisation
(``x * norm_scale + norm_offset``, repeated to the spec's channels), mirroring
:func:`fer_edge.preprocess.normalize`. Batched ops keep the pipeline well ahead of the model on
a 2-core CPU (see ``benchmarks/train_input.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fer_edge.preprocess import resize_faces
from fer_edge.spec import ModelSpec
from fer_edge.train._keras import tf


@dataclass(frozen=True)
class Augment:
    """Train-time augmentation ranges (all symmetric around identity)."""

    flip: bool = True
    rotation_deg: float = 10.0
    shift: float = 0.1
    zoom: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2


def normalize_tf(x: tf.Tensor, spec: ModelSpec) -> tf.Tensor:
    """(B, S, S) float32 grey [0, 255] -> (B, S, S, C) model input; = preprocess.normalize."""
    x = x * tf.constant(spec.norm_scale, tf.float32) + tf.constant(spec.norm_offset, tf.float32)
    return tf.repeat(x[..., None], spec.channels, axis=-1)


def _affine(batch: tf.Tensor, aug: Augment, size: int) -> tf.Tensor:
    """One random affine warp per image (flip, rotation, shift, zoom), reflect-filled."""
    b = tf.shape(batch)[0]
    s = float(size)
    ang = tf.random.uniform([b], -1.0, 1.0) * (aug.rotation_deg * math.pi / 180.0)
    zoom = 1.0 + tf.random.uniform([b], -aug.zoom, aug.zoom)
    tx = tf.random.uniform([b], -aug.shift, aug.shift) * s
    ty = tf.random.uniform([b], -aug.shift, aug.shift) * s
    flip = (tf.cast(tf.random.uniform([b]) < 0.5, tf.float32) * 2.0 - 1.0) if aug.flip else (
        tf.ones([b]))
    # output->input mapping: p_in = A (p_out - c) + c + t, with A = R(ang) * diag(flip, 1) / zoom
    cos, sin = tf.cos(ang) / zoom, tf.sin(ang) / zoom
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    c = (s - 1.0) / 2.0
    a2 = c - a0 * c - a1 * c + tx
    b2 = c - b0 * c - b1 * c + ty
    zeros = tf.zeros([b])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=batch[..., None], transforms=transforms, output_shape=tf.constant([size, size]),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    return out[..., 0]


def _photometric(batch: tf.Tensor, aug: Augment) -> tf.Tensor:
    b = tf.shape(batch)[0]
    mean = tf.reduce_mean(batch, axis=[1, 2], keepdims=True)
    contrast = 1.0 + tf.random.uniform([b, 1, 1], -aug.contrast, aug.contrast)
    bright = tf.random.uniform([b, 1, 1], -aug.brightness, aug.brightness) * 255.0
    return tf.clip_by_value((batch - mean) * contrast + mean + bright, 0.0, 255.0)


def augment_batch(batch: tf.Tensor, aug: Augment, size: int) -> tf.Tensor:
    """Augment (B, S, S) float32 grey [0, 255] faces."""
    return _photometric(_affine(batch, aug, size), aug)


def make_dataset(images: np.ndarray, labels: np.ndarray, spec: ModelSpec, batch_size: int, *,
                 training: bool, aug: Augment | None = None, sample_weights: np.ndarray | None =
                 None, indices: np.ndarray | None = None, seed: int = 0,
                 one_hot: bool = True) -> tf.data.Dataset:
    """Batched dataset of (x, y[, w]).

    Args:
        images: (N, 48, 48) uint8 grey faces at source resolution.
        labels: (N,) int class ids.
        spec: model spec (input size, normalisation, channels).
        batch_size: batch size.
        training: shuffle each epoch, drop the last partial batch, augment if ``aug``.
        aug: augmentation ranges (train only; None = no augmentation).
        sample_weights: (num_classes,) per-class loss weights, or None.
        indices: (M,) epoch index list (oversampling); default every face once.
        seed: shuffle seed.
        one_hot: labels as one-hot float32 (needed for label smoothing) or int.

    Returns:
        ``tf.data.Dataset`` yielding x (B, S, S, C) float32, y (B, 7) float32 or (B,) int32,
        and w (B,) float32 when ``sample_weights`` is given.
    """
    cache = tf.constant(resize_faces(images, spec.input_size))  # (N, S, S) float32 in memory
    y_all = tf.constant(np.asarray(labels, np.int32))
    w_all = None if sample_weights is None else tf.constant(np.asarray(sample_weights, np.float32))
    idx = np.arange(len(labels)) if indices is None else np.asarray(indices)
    ds = tf.data.Dataset.from_tensor_slices(idx.astype(np.int64))
    if training:
        ds = ds.shuffle(len(idx), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training and len(idx) >= batch_size)

    def load(i):
        x = tf.gather(cache, i)
        if training and aug is not None:
            x = augment_batch(x, aug, spec.input_size)
        x = normalize_tf(x, spec)
        y = tf.gather(y_all, i)
        y_out = tf.one_hot(y, spec.num_classes) if one_hot else y
        if w_all is not None:
            return x, y_out, tf.gather(w_all, y)
        return x, y_out

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    return ds.prefetch(tf.data.AUTOTUNE)


def predict_probs(model, images: np.ndarray, spec: ModelSpec, batch_size: int = 128,
                  tta_flip: bool = False) -> np.ndarray:
    """Float-model probabilities on source-resolution faces.

    Args:
        model: a Keras model taking the spec's input.
        images: (N, 48, 48) uint8 grey faces.
        spec: model spec.
        batch_size: batch size.
        tta_flip: average with the mirrored face.

    Returns:
        (N, num_classes) float32 probabilities.
    """
    ds = make_dataset(images, np.zeros(len(images), np.int64), spec, batch_size, training=False)
    fn = tf.function(lambda x: model(x, training=False))
    out = []
    for x, _ in ds:
        p = fn(x)
        if tta_flip:
            p = (p + fn(tf.reverse(x, axis=[2]))) / 2.0
        out.append(p.numpy())
    return np.concatenate(out) if out else np.zeros((0, spec.num_classes), np.float32)
