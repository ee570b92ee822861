"""tf.data input pipeline for training and evaluation. Heavy tier.

Faces are resized once with :func:`fer_edge.preprocess.resize_faces` (the same code the demo
uses) into an in-memory float32 cache; the graph then gathers a batch, augments it (train only)
with one batched affine warp (flip, rotation, shift and scale jitter of the crop),
brightness/contrast/gamma, and optionally what a live camera and detector add (blur, sensor
noise, JPEG re-encoding), optionally mixes faces and targets (mixup/cutmix), and applies the
spec's normalisation
(``x * norm_scale + norm_offset``, repeated to the spec's channels), mirroring
:func:`fer_edge.preprocess.normalize`. Batched ops keep the pipeline well ahead of the model on
a 2-core CPU (see ``studies/train_input/train_input.py``).
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
    fill_mode: str = "reflect"  # or "nearest"
    gamma: float = 0.0  # max |log gamma|
    blur_sigma: float = 0.0  # max sigma, in 48-px source pixels
    noise: float = 0.0  # max std, fraction of 255
    jpeg_quality: int = 0  # lowest quality; 0 = off
    degrade_prob: float = 0.5  # probability of each of blur, noise, JPEG per face
    #: Gaussian crop jitter (std of dx, dy as fractions of the side, std of the relative crop
    #: side, std of the rotation in degrees), from a detector's measured box spread
    #: (:func:`fer_edge.detect.crops.box_spread`); replaces the uniform shift/zoom/rotation ranges
    jitter: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class Mix:
    """Batch mixing: ``kind`` "mixup" or "cutmix", lambda ~ Beta(alpha, alpha)."""

    kind: str = "mixup"
    alpha: float = 0.2
    prob: float = 0.5


def normalize_tf(x: tf.Tensor, spec: ModelSpec) -> tf.Tensor:
    """(B, S, S) float32 grey [0, 255] -> (B, S, S, C) model input; = preprocess.normalize."""
    if isinstance(spec.norm_scale, tuple) or isinstance(spec.norm_offset, tuple):
        x = tf.repeat(x[..., None], spec.channels, axis=-1)
        return (x * tf.constant(spec.norm_scale, tf.float32)
                + tf.constant(spec.norm_offset, tf.float32))
    x = x * tf.constant(spec.norm_scale, tf.float32) + tf.constant(spec.norm_offset, tf.float32)
    return tf.repeat(x[..., None], spec.channels, axis=-1)


def _affine(batch: tf.Tensor, aug: Augment, size: int) -> tf.Tensor:
    """One random affine warp per image (flip, rotation, shift, zoom), reflect-filled."""
    b = tf.shape(batch)[0]
    s = float(size)
    if aug.jitter is not None:  # what a detector box does: Gaussian, clipped at 2.5 std
        sd_x, sd_y, sd_size, sd_ang = aug.jitter
        z = tf.clip_by_value(tf.random.normal([4, b]), -2.5, 2.5)
        ang = z[0] * (sd_ang * math.pi / 180.0)
        zoom = 1.0 / tf.maximum(1.0 + z[1] * sd_size, 0.3)  # a larger crop shows a smaller face
        tx, ty = z[2] * sd_x * s, z[3] * sd_y * s
    else:
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
        fill_value=0.0, interpolation="BILINEAR", fill_mode=aug.fill_mode.upper())
    return out[..., 0]


def _photometric(batch: tf.Tensor, aug: Augment) -> tf.Tensor:
    b = tf.shape(batch)[0]
    if aug.gamma > 0:
        g = tf.exp(tf.random.uniform([b, 1, 1], -aug.gamma, aug.gamma))
        batch = 255.0 * tf.pow(tf.clip_by_value(batch / 255.0, 0.0, 1.0), g)
    mean = tf.reduce_mean(batch, axis=[1, 2], keepdims=True)
    contrast = 1.0 + tf.random.uniform([b, 1, 1], -aug.contrast, aug.contrast)
    bright = tf.random.uniform([b, 1, 1], -aug.brightness, aug.brightness) * 255.0
    return tf.clip_by_value((batch - mean) * contrast + mean + bright, 0.0, 255.0)


def _chance(b, p: float) -> tf.Tensor:
    """(B,) float32: 1 with probability p, else 0."""
    return tf.cast(tf.random.uniform([b]) < p, tf.float32)


def _blur(batch: tf.Tensor, aug: Augment, size: int) -> tf.Tensor:
    """Gaussian blur with a random sigma per face, all faces in one depthwise convolution."""
    b = tf.shape(batch)[0]
    max_sigma = aug.blur_sigma * size / 48.0  # source pixels -> input pixels
    r = max(1, int(math.ceil(3 * max_sigma)))
    sigma = tf.random.uniform([b], 0.0, max_sigma) * _chance(b, aug.degrade_prob) + 1e-3
    t = tf.range(-r, r + 1, dtype=tf.float32)
    k = tf.exp(-tf.square(t[:, None]) / (2.0 * tf.square(sigma[None, :])))  # (2r+1, B)
    k = k / tf.reduce_sum(k, axis=0, keepdims=True)
    x = tf.transpose(batch, [1, 2, 0])[None]  # (1, S, S, B): one channel per face
    x = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    x = tf.nn.depthwise_conv2d(x, k[:, None, :, None], [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, k[None, :, :, None], [1, 1, 1, 1], "VALID")
    return tf.transpose(x[0], [2, 0, 1])


def _noise(batch: tf.Tensor, aug: Augment) -> tf.Tensor:
    b = tf.shape(batch)[0]
    std = tf.random.uniform([b, 1, 1], 0.0, aug.noise * 255.0) * _chance(
        b, aug.degrade_prob)[:, None, None]
    return tf.clip_by_value(batch + tf.random.normal(tf.shape(batch)) * std, 0.0, 255.0)


def _jpeg(batch: tf.Tensor, aug: Augment) -> tf.Tensor:
    b = tf.shape(batch)[0]
    quality = tf.random.uniform([b], aug.jpeg_quality, 96, dtype=tf.int32)
    apply = tf.random.uniform([b]) < aug.degrade_prob

    def one(args):
        img, q, a = args
        u8 = tf.cast(tf.round(tf.clip_by_value(img, 0.0, 255.0)), tf.uint8)[..., None]
        enc = tf.cast(tf.image.adjust_jpeg_quality(u8, q)[..., 0], tf.float32)
        return tf.where(a, enc, img)

    return tf.map_fn(one, (batch, quality, apply), fn_output_signature=tf.float32)


def augment_batch(batch: tf.Tensor, aug: Augment, size: int) -> tf.Tensor:
    """Augment (B, S, S) float32 grey [0, 255] faces: warp, photometric, blur, noise, JPEG."""
    x = _photometric(_affine(batch, aug, size), aug)
    if aug.blur_sigma > 0:
        x = _blur(x, aug, size)
    if aug.noise > 0:
        x = _noise(x, aug)
    if aug.jpeg_quality > 0:
        x = _jpeg(x, aug)
    return x


def _beta(b, alpha: float) -> tf.Tensor:
    g1 = tf.random.gamma([b], alpha)
    g2 = tf.random.gamma([b], alpha)
    return g1 / (g1 + g2 + 1e-12)


def mix_batch(x: tf.Tensor, y: tf.Tensor, mix: Mix) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixup or cutmix within a batch.

    Args:
        x: (B, S, S) float32 grey faces.
        y: (B, C) float32 targets (one-hot or soft).
        mix: kind, alpha and the fraction of faces mixed.

    Returns:
        Mixed (x, y); each face is mixed with a random partner of the same batch, the target
        in proportion to the share of pixels (cutmix) or the blend weight (mixup).
    """
    b = tf.shape(x)[0]
    size = tf.shape(x)[1]
    perm = tf.random.shuffle(tf.range(b))
    lam = _beta(b, mix.alpha)
    lam = tf.where(tf.random.uniform([b]) < mix.prob, lam, tf.ones([b]))
    x2, y2 = tf.gather(x, perm), tf.gather(y, perm)
    if mix.kind == "mixup":
        xm = lam[:, None, None] * x + (1.0 - lam[:, None, None]) * x2
        share = lam
    else:  # cutmix: a box of area (1 - lam) from the partner
        s = tf.cast(size, tf.float32)
        cut = tf.sqrt(1.0 - lam) * s
        cy = tf.random.uniform([b], 0.0, s)
        cx = tf.random.uniform([b], 0.0, s)
        grid = tf.range(s)
        iny = tf.logical_and(grid[None, :] >= (cy - cut / 2)[:, None],
                             grid[None, :] < (cy + cut / 2)[:, None])
        inx = tf.logical_and(grid[None, :] >= (cx - cut / 2)[:, None],
                             grid[None, :] < (cx + cut / 2)[:, None])
        box = tf.cast(tf.logical_and(iny[:, :, None], inx[:, None, :]), tf.float32)
        xm = x * (1.0 - box) + x2 * box
        share = 1.0 - tf.reduce_mean(box, axis=[1, 2])
    ym = share[:, None] * y + (1.0 - share[:, None]) * y2
    return xm, ym


def make_dataset(images: np.ndarray, labels: np.ndarray, spec: ModelSpec, batch_size: int, *,
                 training: bool, aug: Augment | None = None, sample_weights: np.ndarray | None =
                 None, indices: np.ndarray | None = None, seed: int = 0,
                 one_hot: bool = True, targets: np.ndarray | None = None,
                 mix: Mix | None = None) -> tf.data.Dataset:
    """Batched dataset of (x, y[, w]).

    Args:
        images: (N, 48, 48) uint8 grey faces at source resolution.
        labels: (N,) int class ids.
        targets: (N, C) float32 soft targets used instead of one-hot ``labels`` (e.g. FER+
            votes), or None.
        mix: mixup/cutmix of each training batch (needs one-hot or soft targets), or None.
        spec: model spec (input size, normalisation, channels).
        batch_size: batch size.
        training: shuffle each epoch, drop the last partial batch, augment if ``aug``.
        aug: augmentation ranges (train only; None = no augmentation).
        sample_weights: (num_classes,) per-class loss weights, or None. A face's weight is its
            target (after mixing) dotted with them: its class's weight for a one-hot target.
        indices: (M,) epoch index list (oversampling); default every face once.
        seed: shuffle seed.
        one_hot: labels as one-hot float32 (needed for label smoothing) or int.

    Returns:
        ``tf.data.Dataset`` yielding x (B, S, S, C) float32, y (B, 7) float32 or (B,) int32,
        and w (B,) float32 when ``sample_weights`` is given.
    """
    cache = tf.constant(resize_faces(images, spec.input_size))  # (N, S, S) float32 in memory
    y_all = tf.constant(np.asarray(labels, np.int32))
    t_all = None if targets is None else tf.constant(np.asarray(targets, np.float32))
    w_all = None if sample_weights is None else tf.constant(np.asarray(sample_weights, np.float32))
    if (t_all is not None or mix is not None) and not one_hot:
        raise ValueError("soft targets and mixing need one_hot=True")
    idx = np.arange(len(labels)) if indices is None else np.asarray(indices)
    ds = tf.data.Dataset.from_tensor_slices(idx.astype(np.int64))
    if training:
        ds = ds.shuffle(len(idx), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training and len(idx) >= batch_size)

    def load(i):
        x = tf.gather(cache, i)
        if training and aug is not None:
            x = augment_batch(x, aug, spec.input_size)
        y = tf.gather(y_all, i)
        if t_all is not None:
            y_out = tf.gather(t_all, i)
        else:
            y_out = tf.one_hot(y, spec.num_classes) if one_hot else y
        if training and mix is not None:
            x, y_out = mix_batch(x, y_out, mix)
        x = normalize_tf(x, spec)
        if w_all is not None:
            w = (tf.linalg.matvec(y_out, w_all) if one_hot else tf.gather(w_all, y))
            return x, y_out, w
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
