"""``fer-edge benchmark``: measure builds on this machine and write one CSV. Light tier.

Per build and thread count: size, sha256, classifier latency (batch 1, one forward pass,
median and p90), end-to-end demo FPS and per-stage ms on a fixed 640x480 video (default: the
packaged sample clip), and, with ``--data``, accuracy and macro-F1 on a split. One CSV per run
in ``--out``, named ``<date>_<host>_<git sha>.csv``, with the machine described in its columns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("benchmark", help="size, latency, accuracy and FPS of builds",
                       description=__doc__.splitlines()[0])
    p.add_argument("builds", nargs="+", help=".tflite/.onnx files or folders holding them")
    p.add_argument("--data", help="dataset for accuracy (fer2013.csv/.npz/folders)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--limit", type=int, default=0, help="at most N faces for accuracy")
    p.add_argument("--threads", default="1,all", help="thread counts, e.g. 1,2 or 1,all")
    p.add_argument("--runs", type=int, default=100, help="timed batch-1 runs")
    p.add_argument("--video", default="sample", help="video for end-to-end FPS ('' = skip)")
    p.add_argument("--out", default="benchmarks/results", help="folder for the CSV")
    return p


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True,
                              cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "nogit"


def _expand(paths: list[str]) -> list[Path]:
    from fer_edge.errors import ModelFileError

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix in (".tflite", ".onnx"))
        elif p.is_file():
            out.append(p)
        else:
            raise ModelFileError(f"{p}: no such build or folder")
    if not out:
        raise ModelFileError("no .tflite/.onnx builds found in " + ", ".join(paths))
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from fer_edge.bench.machine import machine_facts
    from fer_edge.demo.config import DemoConfig
    from fer_edge.demo.loop import run_demo
    from fer_edge.evaluate import latency_ms, predict_all, sha256
    from fer_edge.io import atomic_write_csv
    from fer_edge.metrics import classification_report
    from fer_edge.preprocess import to_model_input
    from fer_edge.runtime import load_predictor

    builds = _expand(args.builds)
    counts = sorted({os.cpu_count() or 1 if t == "all" else int(t)
                     for t in args.threads.split(",")})
    data = None
    if args.data:
        from fer_edge.data import load_dataset

        ds = load_dataset(args.data)
        x, y = ds.images[args.split], ds.labels[args.split]
        data = (x[:args.limit], y[:args.limit]) if args.limit else (x, y)
    facts = machine_facts()
    rows = []
    for b in builds:
        acc = {}
        if data is not None:
            pred = load_predictor(b)
            rep = classification_report(data[1], predict_all(pred, data[0]).argmax(1),
                                        pred.spec.labels)
            acc = {"accuracy": round(rep["accuracy"], 4), "macro_f1": round(rep["macro_f1"], 4)}
        for n in counts:
            pred = load_predictor(b, num_threads=n)
            face = data[0][:1] if data is not None else np.zeros((1, 48, 48), np.uint8)
            x1 = to_model_input(face, pred.spec)
            lat = latency_ms(pred, x1, args.runs)
            row = {"date": dt.date.today().isoformat(), "build": b.name,
                   "sha256": sha256(b)[:12], "mb": round(b.stat().st_size / 1e6, 2),
                   "threads": n, "latency_ms_median": round(lat["median"], 3),
                   "latency_ms_p90": round(lat["p90"], 3), **acc}
            if args.video:
                s = run_demo(DemoConfig(video=args.video, headless=True), predictor=pred).summary()
                row.update({"e2e_fps": s["fps"], "detect_ms": s["detect_ms"],
                            "classify_ms": s["classify_ms"], "peak_rss_mb": s["peak_rss_mb"]})
            row.update(facts)
            rows.append(row)
            log.info("%s, %d thread(s): %.2f ms median%s", b.name, n, lat["median"],
                     f", {row['e2e_fps']} FPS end to end" if args.video else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dt.date.today().isoformat()}_{facts['host'] or 'host'}_{_git_sha()}.csv"
    atomic_write_csv(path, rows)
    print(f"wrote {path}")
    return 0
