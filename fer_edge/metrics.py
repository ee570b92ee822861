"""Classification metrics for the reports. Light tier (numpy only).

Shared by ``fer-edge train`` (test-split evaluation) and the convert/evaluate parity check.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts; rows are true classes, columns predicted."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def classification_report(y_true: np.ndarray, y_pred: np.ndarray,
                          labels: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, balanced accuracy and per-class precision/recall/F1/support.

    Args:
        y_true: (N,) int true class ids.
        y_pred: (N,) int predicted class ids.
        labels: class names in id order.

    Returns:
        JSON-ready dict with ``accuracy``, ``macro_f1``, ``balanced_accuracy``, ``n``,
        ``per_class`` (list of dicts) and ``confusion`` (list of lists).
    """
    c = len(labels)
    cm = confusion_matrix(y_true, y_pred, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1)
    predicted = cm.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    n = int(cm.sum())
    present = support > 0
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "per_class": [
            {"label": labels[i], "support": int(support[i]), "precision": float(precision[i]),
             "recall": float(recall[i]), "f1": float(f1[i])}
            for i in range(c)
        ],
        "confusion": cm.tolist(),
    }


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """Exact (binomial) McNemar test of two classifiers on the same samples.

    Args:
        correct_a: (N,) bool, model A right on each sample.
        correct_b: (N,) bool, model B right on each sample.

    Returns:
        ``b`` (A right, B wrong), ``c`` (A wrong, B right) and the two-sided ``p`` value.
    """
    a = np.asarray(correct_a, bool)
    b_ = np.asarray(correct_b, bool)
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "p": 1.0}
    k = min(b, c)
    # two-sided exact binomial tail with p = 0.5, summed in log space for large n
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
            for i in range(k + 1)]
    m = max(logs)
    tail = math.exp(m) * sum(math.exp(v - m) for v in logs)
    return {"b": b, "c": c, "p": float(min(1.0, 2 * tail))}


def format_confusion_md(cm: np.ndarray | list, labels: tuple[str, ...] | list[str]) -> str:
    """Confusion matrix as a Markdown table (rows true, columns predicted)."""
    cm = np.asarray(cm)
    head = "| true \\ pred | " + " | ".join(labels) + " | n |"
    sep = "|" + "---|" * (len(labels) + 2)
    rows = [f"| {labels[i]} | " + " | ".join(str(v) for v in cm[i]) + f" | {cm[i].sum()} |"
            for i in range(len(labels))]
    return "\n".join([head, sep, *rows])


def plot_confusion(cm: np.ndarray | list, labels: tuple[str, ...] | list[str], path: str,
                   title: str = "") -> None:
    """Write a row-normalised confusion matrix PNG (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="recall share")
    ax.set_title(title)
    save_png(fig, path)


def save_png(fig, path: str) -> None:
    """Write a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    from fer_edge.io import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
