"""Post-hoc per-class logit adjustment of a build, chosen on validation (issue 13 study).

    python studies/logit_adjust/logit_adjust.py \\
        fer_edge/assets/fer_default_int8.tflite s24_int8.tflite \\
        --data ../shared/data/fer2013.npz

For each build (light runtime, flip TTA as the spec says): the class probabilities of the
FER-2013 validation split (PublicTest) and PrivateTest; a bias vector ``b`` (7,) added to
``log p`` is found by coordinate ascent on validation accuracy (each class in turn, a grid of
-1..1 in steps of 0.05, 4 sweeps; ``b[happy]`` fixed at 0, since only differences matter);
then PrivateTest is scored with and without it. PrivateTest plays no part in choosing ``b``.
Such a bias could be folded into the softmax layer's bias of the float model before
conversion; this script only measures whether it would help.

Adds one row per build and variant to the rows already in
``studies/logit_adjust/results/logit_adjust.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
from pathlib import Path

import numpy as np

from fer_edge.data import load_dataset
from fer_edge.io import atomic_write_csv
from fer_edge.metrics import classification_report
from fer_edge.runtime import load_predictor

RESULTS = Path(__file__).resolve().parent / "results" / "logit_adjust.csv"
GRID = np.round(np.arange(-1.0, 1.0001, 0.05), 2)


def fit_bias(logp: np.ndarray, y: np.ndarray, fixed: int, sweeps: int = 4) -> np.ndarray:
    """Coordinate ascent on accuracy of ``argmax(logp + b)``.

    Args:
        logp: (N, C) float log-probabilities.
        y: (N,) int true classes.
        fixed: the class whose bias stays 0.

    Returns:
        (C,) float64 bias.
    """
    b = np.zeros(logp.shape[1])
    best = float(np.mean((logp + b).argmax(1) == y))
    for _ in range(sweeps):
        changed = False
        for c in range(logp.shape[1]):
            if c == fixed:
                continue
            for v in GRID:
                trial = b.copy()
                trial[c] = v
                acc = float(np.mean((logp + trial).argmax(1) == y))
                if acc > best + 1e-12:
                    best, b, changed = acc, trial, True
        if not changed:
            break
    return b


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", help=".tflite / .onnx builds")
    ap.add_argument("--data", default="../shared/data/fer2013.npz")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    ds = load_dataset(args.data)
    rows = []
    for build in args.builds:
        pred = load_predictor(build)
        labels = tuple(pred.spec.labels)
        lp = {s: np.log(np.clip(pred.predict(ds.images[s]), 1e-7, 1.0)) for s in ("val", "test")}
        b = fit_bias(lp["val"], ds.labels["val"], fixed=labels.index("happy"))
        for variant, bias in (("none", np.zeros(len(labels))), ("val-accuracy", b)):
            row = {"date": dt.datetime.now().isoformat(timespec="seconds"),
                   "build": Path(build).name, "bias": variant,
                   "bias_values": " ".join(f"{v:+.2f}" for v in bias)}
            for split in ("val", "test"):
                rep = classification_report(ds.labels[split], (lp[split] + bias).argmax(1), labels)
                row[f"{split}_accuracy"] = round(100 * rep["accuracy"], 2)
                row[f"{split}_macro_f1"] = round(100 * rep["macro_f1"], 2)
                if split == "test":
                    for pc in rep["per_class"]:
                        row[f"test_recall_{pc['label']}"] = round(100 * pc["recall"], 1)
            rows.append(row)
            print(f"{row['build']:32s} bias {variant:12s} val {row['val_accuracy']:.2f} "
                  f"test {row['test_accuracy']:.2f} macro-F1 {row['test_macro_f1']:.2f} "
                  f"fear {row.get('test_recall_fear', 0):.1f}  [{row['bias_values']}]")
    out = Path(args.out)
    if out.is_file():  # keep earlier runs' rows; the file is rewritten whole, atomically
        with out.open(newline="") as f:
            rows = list(csv.DictReader(f)) + rows
    atomic_write_csv(out, rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
