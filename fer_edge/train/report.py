"""Test-split evaluation of a training run: per-class report, confusion matrix, stage 1 vs 2.

Heavy tier (runs the Keras model).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fer_edge.data import Dataset
from fer_edge.io import atomic_write_text
from fer_edge.metrics import classification_report, format_confusion_md, plot_confusion
from fer_edge.spec import ModelSpec
from fer_edge.train._keras import keras
from fer_edge.train.config import TrainConfig
from fer_edge.train.pipeline import predict_probs

log = logging.getLogger(__name__)


def load_float_model(path: str | Path) -> keras.Model:
    """Load a float Keras model saved by ``fer-edge train``."""
    return keras.models.load_model(str(path), compile=False)


def evaluate_models(models: dict[str, Path], ds: Dataset, spec: ModelSpec,
                    split: str = "test") -> dict[str, dict]:
    """Per-class reports of each float model on ``split`` (with and without flip TTA)."""
    out = {}
    x, y = ds.images[split], ds.labels[split]
    for name, path in models.items():
        model = load_float_model(path)
        probs = predict_probs(model, x, spec, tta_flip=False)
        rep = classification_report(y, probs.argmax(1), spec.labels)
        if spec.tta_flip:
            probs_t = predict_probs(model, x, spec, tta_flip=True)
            rep_t = classification_report(y, probs_t.argmax(1), spec.labels)
            rep = {**rep_t, "no_tta_accuracy": rep["accuracy"],
                   "no_tta_macro_f1": rep["macro_f1"]}
        out[name] = rep
        log.info("%s on %s: accuracy %.4f, macro-F1 %.4f%s", name, split, rep["accuracy"],
                 rep["macro_f1"], " (flip TTA)" if spec.tta_flip else "")
    return out


def write_test_report(run: Path, ds: Dataset, spec: ModelSpec, cfg: TrainConfig) -> dict:
    """Evaluate the run's float model(s) on the test split; write ``eval/`` and update the spec."""
    models = {}
    if (run / "stage1_float.h5").is_file():
        models["stage 1 (transfer)"] = run / "stage1_float.h5"
    models["final" if models else "float"] = run / "model_float.h5"
    reps = evaluate_models(models, ds, spec, "test")
    final_name = list(models)[-1]
    final = reps[final_name]
    ev = run / "eval"
    ev.mkdir(exist_ok=True)
    atomic_write_text(ev / "test_report.json", json.dumps(
        {"split": "test", "data": cfg.data, "tta_flip": spec.tta_flip, "models": reps},
        indent=2) + "\n")
    plot_confusion(final["confusion"], spec.labels, str(ev / "confusion.png"),
                   f"{run.name}: test split, {final_name}")
    atomic_write_text(ev / "test_report.md", render_md(run.name, reps, spec, cfg))
    extra = dict(spec.extra)
    extra["float_test_accuracy"] = round(final["accuracy"], 4)
    extra["float_test_macro_f1"] = round(final["macro_f1"], 4)
    spec.replace(extra=extra).write(run / "spec.json")
    return reps


def render_md(run_name: str, reps: dict[str, dict], spec: ModelSpec, cfg: TrainConfig) -> str:
    names = list(reps)
    lines = [f"# {run_name}: test-split evaluation", "",
             f"Data `{cfg.data}`, split `test` (PrivateTest for FER-2013), n = "
             f"{reps[names[-1]]['n']}. Flip TTA: {'on' if spec.tta_flip else 'off'}.", "",
             "| model | accuracy | macro-F1 | balanced acc | accuracy without TTA |",
             "|---|---|---|---|---|"]
    for n in names:
        r = reps[n]
        no_tta = r.get("no_tta_accuracy", r["accuracy"])
        lines.append(f"| {n} | {r['accuracy']:.2%} | {r['macro_f1']:.2%} | "
                     f"{r['balanced_accuracy']:.2%} | {no_tta:.2%} |")
    lines += ["", "## Per class (recall / precision / F1)", "",
              "| class | n | " + " | ".join(f"{n} recall" for n in names) +
              f" | {names[-1]} precision | {names[-1]} F1 |",
              "|---|---|" + "---|" * (len(names) + 2)]
    for i, lab in enumerate(spec.labels):
        pcs = [reps[n]["per_class"][i] for n in names]
        lines.append(f"| {lab} | {pcs[-1]['support']} | " +
                     " | ".join(f"{p['recall']:.2%}" for p in pcs) +
                     f" | {pcs[-1]['precision']:.2%} | {pcs[-1]['f1']:.2%} |")
    if cfg.weights == "none" and not cfg.init:
        lines += ["", "Stage 1 (transfer learning) did not run: `--weights none` gives the base "
                  "random weights, so the whole network was trained from scratch."]
    lines += ["", f"## Confusion ({names[-1]}; rows true, columns predicted)", "",
              format_confusion_md(reps[names[-1]]["confusion"], spec.labels), "",
              "![confusion](confusion.png)", ""]
    return "\n".join(lines)
