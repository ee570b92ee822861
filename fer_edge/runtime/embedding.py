"""Statistics of a build's embedding output. Light tier.

``fer-edge convert`` records, in every build's spec, the per-feature mean and standard
deviation of the build's own flip-averaged embeddings over the FER-2013 Training faces, so
that a personal profile (``fer-edge enroll``) can standardise features the way the model's
training data spreads them, on a device that has no FER-2013.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from fer_edge.runtime.base import Predictor
from fer_edge.spec import Embedding

log = logging.getLogger(__name__)

#: standard deviations below this (features that never fire) are clipped to it
MIN_STD = 1e-3


def embedding_stats(predictor: Predictor, faces: np.ndarray, batch: int = 256,
                    tta_flip: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of a build's embeddings of ``faces``.

    Args:
        predictor: a loaded build with an embedding output.
        faces: (N, h, w) uint8 grey faces (FER-2013 Training faces: 48x48).
        batch: faces per call (progress is logged every few seconds).
        tta_flip: flip-average as the build does by default (None: the spec's setting).

    Returns:
        (mean, std): (D,) float64 each; std clipped below at :data:`MIN_STD`.
    """
    d = predictor.spec.embedding.size
    total, sq = np.zeros(d), np.zeros(d)
    t0 = last = time.monotonic()
    for i in range(0, len(faces), batch):
        e = predictor.embed(faces[i:i + batch], tta_flip=tta_flip).astype(np.float64)
        total += e.sum(0)
        sq += (e * e).sum(0)
        if time.monotonic() - last > 10:
            last = time.monotonic()
            log.info("embedding statistics: %d/%d faces (%.0f s)", i + len(e), len(faces),
                     last - t0)
    n = max(1, len(faces))
    mean = total / n
    std = np.sqrt(np.maximum(sq / n - mean * mean, 0.0))
    return mean, np.maximum(std, MIN_STD)


def with_stats(embedding: Embedding, mean: np.ndarray, std: np.ndarray) -> Embedding:
    """``embedding`` with ``mean``/``std`` recorded (6 significant digits)."""
    return Embedding(output=embedding.output, size=embedding.size,
                     mean=tuple(float(f"{v:.6g}") for v in mean),
                     std=tuple(float(f"{v:.6g}") for v in std))
