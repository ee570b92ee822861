"""Per-class parity check of exported builds against a reference. Light tier.

Used by ``fer-edge convert`` (reference = the float Keras model's probabilities, computed by
the heavy side and passed in) and by ``fer-edge evaluate`` on any device (reference = another
build, or none). Builds always run through the light runtime the demo uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.gate import Gate, holm  # noqa: F401 (re-exported)
from fer_edge.metrics import classification_report, mcnemar, plot_confusion, save_png
from fer_edge.options import LATENCY_RUNS
from fer_edge.runtime import Predictor

log = logging.getLogger(__name__)


BUILD_SUFFIXES = (".tflite", ".onnx")


def folder_as_build(path: str | Path, flag: str) -> str:
    """The one-line message for a folder given where a build file goes: what the folder holds
    (builds, a train run whose builds are in ``export/``, a folder of photos) and what to pass.
    """
    p = Path(path)
    builds = sorted(q.name for q in p.iterdir() if q.suffix in BUILD_SUFFIXES)
    if builds:
        hint = f"it holds {', '.join(builds[:4])}: pass one of those files"
    elif (p / "export").is_dir() or (p / "model_float.h5").is_file():
        hint = (f"it is a train run: its builds are in {p / 'export'}"
                + ("" if (p / "export").is_dir() else f" once `fer-edge convert {p}` made them"))
    else:
        hint = "pass a .tflite or .onnx file"
    return f"{flag}{p}: is a folder, not a model file; {hint}"


def predict_all(pred: Predictor, faces: np.ndarray, batch: int = 64,
                desc: str = "") -> np.ndarray:
    """Probabilities of a build on (N, h, w) uint8 grey faces, with progress logging."""
    out, t0 = [], time.time()
    for i in range(0, len(faces), batch):
        out.append(pred.predict(faces[i:i + batch]))
        done = min(i + batch, len(faces))
        if done == len(faces) or (i // batch) % 10 == 9:
            log.info("  %s: %d/%d faces (%.0fs)", desc or pred.path.name, done, len(faces),
                     time.time() - t0)
    return np.concatenate(out) if out else np.zeros((0, pred.spec.num_classes), np.float32)


def latency_ms(pred: Predictor, x1: np.ndarray, runs: int = LATENCY_RUNS, warmup: int = 10
               ) -> dict[str, float]:
    """Batch-1 latency of one forward pass (no TTA): median and p90 in ms."""
    for _ in range(warmup):
        pred.predict_inputs(x1)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        pred.predict_inputs(x1)
        t.append((time.perf_counter() - t0) * 1e3)
    return {"median": float(np.median(t)), "p90": float(np.percentile(t, 90))}


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compare(labels: tuple[str, ...], y: np.ndarray, builds: dict[str, np.ndarray],
            reference: np.ndarray | None = None, ref_name: str = "float",
            gate: Gate | None = None) -> dict[str, Any]:
    """Compare builds with the reference on the same faces, class by class.

    Args:
        labels: class names in id order.
        y: (N,) int true labels.
        builds: name -> (N, C) float32 probabilities.
        reference: (N, C) float32 probabilities of the reference (the float model), or None.
        ref_name: its name in the report.
        gate: thresholds; failures are listed per build.

    Returns:
        JSON-ready dict: ``reference`` report, and per build its report, per-class deltas,
        agreement, McNemar tests and ``failures`` (list of one-line reasons).
    """
    gate = gate or Gate()
    y = np.asarray(y)
    out: dict[str, Any] = {"n": int(len(y)), "labels": list(labels), "builds": {}}
    ref_pred = None
    if reference is not None:
        ref_pred = reference.argmax(1)
        out["reference"] = {"name": ref_name, **classification_report(y, ref_pred, labels)}
    for name, probs in builds.items():
        pred = probs.argmax(1)
        rep = classification_report(y, pred, labels)
        entry: dict[str, Any] = {"report": rep, "failures": []}
        if ref_pred is not None:
            ref = out["reference"]
            ok_ref, ok = ref_pred == y, pred == y
            entry["agreement"] = float(np.mean(pred == ref_pred))
            entry["delta_pp"] = 100 * (rep["accuracy"] - ref["accuracy"])
            entry["mcnemar"] = mcnemar(ok_ref, ok)
            per = []
            for c, lab in enumerate(labels):
                m = y == c
                d = 100 * (rep["per_class"][c]["recall"] - ref["per_class"][c]["recall"])
                test = mcnemar(ok_ref[m], ok[m])
                per.append({"label": lab, "support": int(m.sum()), "delta_pp": d, **test})
            adjusted = (holm([q["p"] for q in per]) if gate.class_correction == "holm"
                        else [q["p"] for q in per])
            for q, p_adj in zip(per, adjusted):
                q["p_adj"] = p_adj
                if q["delta_pp"] < 0 and p_adj < gate.max_class_p:
                    entry["failures"].append(
                        f"{name}: {q['label']} recall {q['delta_pp']:+.1f} pp vs {ref_name} "
                        f"(McNemar p={q['p']:.3g}, {gate.class_correction}-adjusted "
                        f"{p_adj:.3g} < {gate.max_class_p}, n={q['support']})")
            entry["per_class_delta"] = per
            if entry["delta_pp"] < -gate.max_drop_pp:
                entry["failures"].insert(0, f"{name}: accuracy {entry['delta_pp']:+.2f} pp vs "
                                         f"{ref_name} (allowed -{gate.max_drop_pp} pp)")
            if entry["agreement"] < gate.min_agreement:
                entry["failures"].append(f"{name}: agreement {entry['agreement']:.3f} with "
                                         f"{ref_name} < {gate.min_agreement}")
        out["builds"][name] = entry
    return out


def build_facts(path: Path, pred: Predictor, x1: np.ndarray, runs: int) -> dict[str, Any]:
    """Size, sha256 and batch-1 latency at 1 thread and at all cores."""
    from fer_edge.runtime import load_predictor

    facts: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size,
                             "sha256": sha256(path), "backend": pred.backend,
                             "input_dtype": str(pred.input_dtype), "latency_ms": {}}
    for n in sorted({1, os.cpu_count() or 1}):
        facts["latency_ms"][str(n)] = latency_ms(load_predictor(path, num_threads=n), x1, runs)
    return facts


def render_md(result: dict[str, Any], facts: dict[str, dict], title: str) -> str:
    """The parity report as Markdown. Without a reference there is nothing to compare with:
    no delta, agreement, McNemar or gate columns, and no gate section."""
    ref = result.get("reference")
    lines = [f"# {title}", "", f"Faces: n = {result['n']}.", ""]
    lines += _summary_table(result, facts, ref)
    lines += _recall_table(result, ref)
    if ref:
        fails = [m for e in result["builds"].values() for m in e["failures"]]
        lines += ["", "## Gate", ""] + ([f"- FAIL {m}" for m in fails] or ["All builds pass."])
    lines += ["", "Latency: batch 1, one forward pass (flip TTA doubles it), median of timed runs "
              "after warm-up, through the same runtime the demo uses.", ""]
    return "\n".join(lines)


def _summary_table(result: dict[str, Any], facts: dict[str, dict], ref: dict | None
                   ) -> list[str]:
    """One row per build (and the reference's first, when there is one)."""
    if ref:
        lines = ["| build | accuracy | Δ vs ref (pp) | macro-F1 | agreement | McNemar p | "
                 "size MB | 1-thread ms | all-thread ms | gate |",
                 "|---|---|---|---|---|---|---|---|---|---|",
                 f"| {ref['name']} (reference) | {ref['accuracy']:.2%} | | "
                 f"{ref['macro_f1']:.2%} | | | | | | |"]
    else:
        lines = ["| build | accuracy | macro-F1 | size MB | 1-thread ms | all-thread ms |",
                 "|---|---|---|---|---|---|"]
    for name, e in result["builds"].items():
        f = facts.get(name, {})
        lat = f.get("latency_ms", {})
        ones = lat.get("1", {}).get("median")
        alls = lat.get(max(lat, key=int), {}).get("median") if lat else None
        cells = [name, f"{e['report']['accuracy']:.2%}"]
        if ref:
            cells.append(f"{e.get('delta_pp', float('nan')):+.2f}")
        cells.append(f"{e['report']['macro_f1']:.2%}")
        if ref:
            cells += [f"{e.get('agreement', float('nan')):.3f}",
                      f"{e.get('mcnemar', {}).get('p', float('nan')):.3g}"]
        cells += [size_mb(f.get("bytes", 0)), _fmt(ones), _fmt(alls)]
        if ref:
            cells.append("FAIL" if e["failures"] else "pass")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _recall_table(result: dict[str, Any], ref: dict | None) -> list[str]:
    """Per-class recall of each build (and its change vs the reference); ``n/a`` for a class
    with no face in the split (its recall is undefined, not 0)."""
    labels = result["labels"]
    lines = ["", "## Per-class recall (support n)", "",
             "| class | n | " + (f"{ref['name']} | " if ref else "") +
             " | ".join(result["builds"]) + " |",
             "|---|---|" + "---|" * (len(result["builds"]) + (1 if ref else 0))]
    for c, lab in enumerate(labels):
        first = next(iter(result["builds"].values()))["report"]["per_class"][c]
        if not first["support"]:
            cells = ["n/a"] * (len(result["builds"]) + (1 if ref else 0))
            lines.append(f"| {lab} | 0 | " + " | ".join(cells) + " |")
            continue
        cells = [f"{ref['per_class'][c]['recall']:.1%}"] if ref else []
        for e in result["builds"].values():
            r = e["report"]["per_class"][c]["recall"]
            if ref:
                d = e["per_class_delta"][c]
                cells.append(f"{r:.1%} ({d['delta_pp']:+.1f}, p={d['p']:.2g}"
                             + (f", adj {d['p_adj']:.2g})" if "p_adj" in d else ")"))
            else:
                cells.append(f"{r:.1%}")
        lines.append(f"| {lab} | {first['support']} | " + " | ".join(cells) + " |")
    return lines


def size_mb(n_bytes: int) -> str:
    """A file size in MB for a table: one decimal, two significant digits under 0.1 MB, so a
    small build never reads "0.0"."""
    mb = n_bytes / 1e6
    return f"{mb:.1f}" if mb >= 0.1 or mb == 0 else f"{mb:.2g}"


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def plot_bars(result: dict[str, Any], path: str) -> None:
    """Per-class recall bar chart: reference vs each build (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = result["labels"]
    series = {}
    if "reference" in result:
        series[result["reference"]["name"]] = [p["recall"] for p in
                                               result["reference"]["per_class"]]
    for name, e in result["builds"].items():
        series[name] = [p["recall"] for p in e["report"]["per_class"]]
    fig, ax = plt.subplots(figsize=(9, 4))
    w = 0.8 / max(len(series), 1)
    for k, (name, vals) in enumerate(series.items()):
        ax.bar(np.arange(len(labels)) + k * w - 0.4 + w / 2, vals, w, label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=3)
    save_png(fig, path)


def write_report(out_dir: Path, result: dict[str, Any], facts: dict[str, dict], title: str
                 ) -> None:
    """report.json, report.md and, where matplotlib is installed (the train extra; not part of
    the light install), a per-class bar chart and one confusion PNG per build."""
    import importlib.util

    from fer_edge.io import atomic_write_text

    atomic_write_text(out_dir / "report.json", json.dumps(
        {"parity": result, "builds": facts}, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", render_md(result, facts, title))
    if importlib.util.find_spec("matplotlib") is None:
        log.info("PNG plots skipped: matplotlib is not installed (pip install matplotlib); "
                 "report.md and report.json hold every figure")
        return
    plot_bars(result, str(out_dir / "per_class.png"))
    for name, e in result["builds"].items():
        plot_confusion(e["report"]["confusion"], result["labels"],
                       str(out_dir / f"confusion_{name.replace('.', '_')}.png"), name)
