"""Backbones at one CPU budget: train each from scratch with one recipe for the same wall-clock
minutes, convert it, measure it.

Per arch, each step in a fresh process through the product's own commands:

1. ``fer-edge train --arch A --weights none --budget-min B --config RECIPE`` (training stops
   at the budget, the best-validation model is kept; a killed run is resumed);
2. ``fer-edge convert <run> --int8 --config CONVERT`` (the parity gate's exit 3 is recorded,
   not fatal);
3. ``fer-edge benchmark`` on the int8 and fp32 TFLite builds, one process per build, 1 thread:
   batch-1 latency and end-to-end demo FPS on the packaged clip.

Then one CSV row per arch (``studies/backbones/results/backbones_<tag>.csv``): test accuracy,
macro-F1 and per-class recall of the float model (flip TTA as the spec says), int8 TFLite
accuracy, drop and agreement, sizes, ms and FPS; and the Markdown table on stdout (or
``--table``).

    python studies/backbones/backbones.py --data ../shared/data/fer2013.npz --budget-min 45 \\
        --work /work/fer-runs/backbones/bench45 --tag budget45

Tiny check of the whole chain (synthetic data, seconds per arch):

    python studies/backbones/backbones.py --data synthetic --archs tiny_cnn --budget-min 0.1 \\
        --train-args "--input-size 32 --limit 200 --batch-size 16" --convert-args \\
        "--qat-epochs 0 --latency-runs 3" --work /tmp/bb --tag tiny --bench-runs 5
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from fer_edge.io import atomic_write_csv
from fer_edge.train.backbones import ARCHS  # the registry; light at import (no TensorFlow)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the repository: its train/ and convert/ recipes
#: every real backbone of the registry (``tiny_cnn`` is the tests' stand-in)
DEFAULT_ARCHS = tuple(a for a in ARCHS if a != "tiny_cnn")


def _fer_edge(args: list[str], log: Path, ok=(0,)) -> int:
    """Run ``python -m fer_edge ARGS`` in a fresh process (nice 19), output appended to log."""
    cmd = ["nice", "-n", "19", sys.executable, "-m", "fer_edge", *args]
    with log.open("a") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n")
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if rc not in ok:
        raise SystemExit(f"{shlex.join(cmd)} failed with exit {rc}; see {log}")
    return rc


def train(arch: str, a, runs: Path, log: Path) -> Path:
    run = runs / arch
    if (run / "eval" / "test_report.json").is_file():
        return run
    if (run / "config.json").is_file():  # killed: continue it (the budget clock restarts)
        _fer_edge(["train", "--resume", "--name", arch, "--runs-dir", str(runs)], log)
        return run
    args = ["train", "--data", a.data, "--arch", arch, "--weights", "none",
            "--budget-min", str(a.budget_min), "--runs-dir", str(runs), "--name", arch]
    if a.recipe:
        args += ["--config", a.recipe]
    _fer_edge(args + shlex.split(a.train_args), log)
    return run


def convert(run: Path, a, log: Path) -> int:
    if (run / "export" / "report.json").is_file():
        return -1
    args = ["convert", str(run), "--int8"]
    if (run / "export").is_dir():  # a conversion killed before its report: make it again
        args.append("--force")
    if a.convert_config:
        args += ["--config", a.convert_config]
    return _fer_edge(args + shlex.split(a.convert_args), log, ok=(0, 3))


def bench(build: Path, a, out: Path, log: Path) -> dict:
    """One ``fer-edge benchmark`` process for one build at 1 thread; its CSV row."""
    out.mkdir(parents=True, exist_ok=True)
    if not list(out.glob("*.csv")):
        _fer_edge(["benchmark", str(build), "--threads", "1", "--runs", str(a.bench_runs),
                   "--out", str(out)], log)
    with sorted(out.glob("*.csv"))[-1].open() as f:
        return next(csv.DictReader(f))


def history_facts(run: Path) -> dict:
    with (run / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {"epochs": len(rows), "train_min": round(sum(float(r["seconds"] or 0)
                                                        for r in rows) / 60, 1)}


def row_for(arch: str, a, work: Path, log: Path) -> dict:
    t0 = time.time()
    run = train(arch, a, work / "runs", log)
    gate_rc = convert(run, a, log)
    spec = json.loads((run / "spec.json").read_text())
    models = json.loads((run / "eval" / "test_report.json").read_text())["models"]
    final = list(models.values())[-1]  # the run's last stage
    rep = json.loads((run / "export" / "report.json").read_text())
    stem = f"fer_{spec['arch']}_{spec['input_size']}"
    i8, f32 = f"{stem}_int8.tflite", f"{stem}_fp32.tflite"
    par = rep["parity"]["builds"].get(i8, {})
    b_i8 = bench(run / "export" / i8, a, work / "bench" / arch / "int8", log)
    b_f32 = bench(run / "export" / f32, a, work / "bench" / arch / "fp32", log)
    row = {"arch": arch, "input_size": spec["input_size"], "budget_min": a.budget_min,
           **history_facts(run),
           "float_accuracy": round(final["accuracy"], 4),
           "float_macro_f1": round(final["macro_f1"], 4)}
    for lab, pc in zip(spec["labels"], final["per_class"]):
        row[f"recall_{lab}"] = round(pc["recall"], 4)
    row.update({
        "int8_accuracy": round(par["report"]["accuracy"], 4) if par else "",
        "int8_drop_pp": round(-par["delta_pp"], 2) if par else "",
        "int8_agreement": round(par["agreement"], 4) if par else "",
        "int8_gate": ("pass" if par and not par["failures"] else "fail") if par else "",
        "int8_mb": b_i8["mb"], "fp32_mb": b_f32["mb"],
        "int8_ms_1t": b_i8["latency_ms_median"], "fp32_ms_1t": b_f32["latency_ms_median"],
        "demo_fps_1t": b_i8.get("e2e_fps", ""),
        "convert_exit": gate_rc, "wall_min_this_call": round((time.time() - t0) / 60, 1),
        "date": dt.date.today().isoformat(), "data": Path(a.data).name})
    return row


def table(rows: list[dict]) -> str:
    head = ("| arch | input | epochs in budget | float acc | macro-F1 | int8 acc | drop pp | "
            "agreement | int8 MB | int8 ms (1 thr) | fp32 ms | demo FPS |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        pct = lambda v: f"{100 * float(v):.2f} %" if v != "" else "-"  # noqa: E731
        lines.append(f"| {r['arch']} | {r['input_size']} | {r['epochs']} | "
                     f"{pct(r['float_accuracy'])} | {pct(r['float_macro_f1'])} | "
                     f"{pct(r['int8_accuracy'])} | {r['int8_drop_pp']} | {r['int8_agreement']} "
                     f"| {r['int8_mb']} | {r['int8_ms_1t']} | {r['fp32_ms_1t']} | "
                     f"{r['demo_fps_1t']} |")
    recall = [k for k in rows[0] if k.startswith("recall_")] if rows else []
    if recall:
        lines += ["", "| arch | " + " | ".join(k[7:] for k in recall) + " |",
                  "|---|" + "---|" * len(recall)]
        for r in rows:
            lines.append(f"| {r['arch']} | " + " | ".join(f"{100 * float(r[k]):.1f}"
                                                         for k in recall) + " |")
    return "\n".join(lines) + "\n"


def merge_rows(out: Path, rows: list[dict]) -> list[dict]:
    """This call's rows plus an existing CSV's rows for the archs it did not run (so a
    comparison can be finished in several calls with the same --tag), in DEFAULT_ARCHS order."""
    if out.is_file():
        with out.open() as f:
            done = {r["arch"] for r in rows}
            rows = rows + [r for r in csv.DictReader(f) if r["arch"] not in done]
    order = {a: k for k, a in enumerate(DEFAULT_ARCHS)}
    return sorted(rows, key=lambda r: order.get(r["arch"], len(order)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dataset (fer2013.npz/.csv, or synthetic)")
    p.add_argument("--archs", default=",".join(DEFAULT_ARCHS))
    p.add_argument("--budget-min", type=float, required=True,
                   help="training wall-clock minutes per arch")
    p.add_argument("--recipe", default=str(ROOT / "train" / "cpu.toml"),
                   help="training recipe for every arch ('' = flags only)")
    p.add_argument("--convert-config", default=str(ROOT / "convert" / "cpu.toml"),
                   help="conversion recipe ('' = defaults)")
    p.add_argument("--train-args", default="", help="extra train flags for every arch")
    p.add_argument("--convert-args", default="", help="extra convert flags")
    p.add_argument("--bench-runs", type=int, default=200, help="timed batch-1 runs")
    p.add_argument("--work", required=True, help="runs, builds and logs (outside the repo)")
    p.add_argument("--tag", required=True, help="names the results CSV")
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--table", default="", help="also write the Markdown table here")
    a = p.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for arch in [s.strip() for s in a.archs.split(",") if s.strip()]:
        log = work / f"{arch}.log"
        print(f"{arch}: train/convert/benchmark, log {log}", flush=True)
        rows.append(row_for(arch, a, work, log))
    out = Path(a.results) / f"backbones_{a.tag}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = merge_rows(out, rows)
    atomic_write_csv(out, rows)
    md = table(rows)
    if a.table:
        Path(a.table).write_text(md)
    print(md)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
