"""Class-imbalance helpers (Disgust is 1.5 % of FER-2013 Training). Light tier."""

from __future__ import annotations

import numpy as np

from fer_edge.errors import ConfigError

IMBALANCE_CHOICES = ("none", "inverse", "sqrt_inverse", "effective", "oversample")


def class_weights(counts: np.ndarray, method: str, beta: float = 0.999) -> np.ndarray:
    """Per-class loss weights, normalised so the sample-weighted mean is 1.

    Args:
        counts: (C,) int training faces per class.
        method: "none" (all 1), "inverse" (1/n_c), "sqrt_inverse" (1/sqrt(n_c)) or "effective"
            (Cui et al. 2019, class-balanced loss: (1 - beta) / (1 - beta**n_c)).
        beta: effective-number hyper-parameter.

    Returns:
        (C,) float64 weights with ``sum(w * counts) == sum(counts)``.
    """
    counts = np.asarray(counts, np.float64)
    if np.any(counts <= 0):
        raise ConfigError("class weights: every class needs at least one training face")
    if method in ("none", "oversample"):
        w = np.ones_like(counts)
    elif method == "inverse":
        w = 1.0 / counts
    elif method == "sqrt_inverse":
        w = 1.0 / np.sqrt(counts)
    elif method == "effective":
        if not 0.0 < beta < 1.0:
            raise ConfigError(f"effective-number beta must be in (0, 1), got {beta}")
        w = (1.0 - beta) / (1.0 - np.power(beta, counts))
    else:
        raise ConfigError(f"unknown imbalance method {method!r}; use one of {IMBALANCE_CHOICES}")
    return w * counts.sum() / (w * counts).sum()


def oversample_indices(labels: np.ndarray, seed: int, power: float = 0.5) -> np.ndarray:
    """Indices that re-balance one epoch by repeating rare-class faces.

    Each class c is drawn ``n_max * (n_c / n_max) ** power`` times (power 0 = fully balanced,
    1 = unchanged); the epoch keeps every original face at least once.

    Args:
        labels: (N,) int class ids.
        seed: RNG seed.
        power: softening exponent.

    Returns:
        (M,) int64 shuffled indices into ``labels``, M >= N.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    n_max = counts.max()
    out = []
    for c, n in enumerate(counts):
        if n == 0:
            continue
        idx = np.flatnonzero(labels == c)
        target = max(n, int(round(n_max * (n / n_max) ** power)))
        extra = rng.choice(idx, target - n, replace=True) if target > n else idx[:0]
        out += [idx, extra]
    out = np.concatenate(out)
    rng.shuffle(out)
    return out
