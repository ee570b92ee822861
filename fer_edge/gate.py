"""The parity gate's thresholds: one definition for ``fer-edge convert`` and ``evaluate``.

Light tier (no imports beyond the standard library), so the CLIs can take their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gate:
    """Thresholds a build must meet against the reference (the float model, or a build).

    Attributes:
        max_drop_pp: largest allowed overall accuracy drop, percentage points.
        max_class_p: a class whose recall drops with a McNemar p value below this fails.
        min_agreement: smallest allowed argmax agreement with the reference (0 = off).
        class_correction: per-class p values corrected for testing every class at once
            (``"holm"``) or raw (``"none"``).
    """

    max_drop_pp: float = 1.0
    max_class_p: float = 0.05
    min_agreement: float = 0.9
    class_correction: str = "holm"


#: the choices of :attr:`Gate.class_correction`
CLASS_CORRECTIONS = ("holm", "none")


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p values (same order as given).

    Seven per-class tests at 0.05 each would flag some class of an identical-quality build
    about 30 % of the time; Holm's step-down keeps that family-wise rate at 0.05.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adj, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adj[i] = running
    return adj
