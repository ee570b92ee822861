"""Merge one run's fer-edge and fer rows (JSON lines from edge.py and measure.py) into
``benchmarks/results/vs_fer.csv`` and the ratios of that same run into ``vs_fer_ratios.csv``.

Ratios are fer-edge / fer at the same thread count, measured minutes apart on one machine:
speed ratios above 1 favour fer-edge for FPS, below 1 for ms; accuracy as a difference in
percentage points. Standard library only (runs with any python3).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _rows(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()
            if line.startswith("{")]


def _append(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    old: list[dict] = []
    if path.is_file():
        with path.open(newline="") as f:
            old = list(csv.DictReader(f))
        fields = list(dict.fromkeys([*(old[0].keys() if old else []), *fields]))
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(old + rows)
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge", required=True, help="edge.py output (JSON lines)")
    ap.add_argument("--peer", required=True, help="measure.py output (JSON lines)")
    ap.add_argument("--cpu", default=platform.processor() or platform.machine())
    args = ap.parse_args()
    edge, peer = _rows(args.edge), _rows(args.peer)
    if not edge or not peer:
        raise SystemExit("compare: one side produced no rows; see the log above")
    run = dt.datetime.now().isoformat(timespec="minutes")
    stamp = {"run": run, "cpu": args.cpu}
    _append(RESULTS / "vs_fer.csv", [{**stamp, **r} for r in edge + peer])
    ratios = []
    for p in peer:
        for e in (r for r in edge if r["threads"] == p["threads"]):
            ratios.append({
                **stamp, "threads": p["threads"], "fer_edge_setting": e["setting"],
                "accuracy_pp": round(100 * (e["accuracy"] - p["accuracy"]), 2),
                "macro_f1_pp": round(100 * (e["macro_f1"] - p["macro_f1"]), 2),
                "disgust_recall_pp": round(100 * (e["recall_disgust"] - p["recall_disgust"]), 2),
                "classify_ms_ratio": round(e["classify_ms_median"] / p["classify_ms_median"], 2),
                "e2e_fps_ratio": round(e["e2e_fps"] / p["e2e_fps"], 2),
                "install_size_ratio": round(e["install_mb"] / p["install_mb"], 3)
                if p["install_mb"] else "",
            })
    _append(RESULTS / "vs_fer_ratios.csv", ratios)
    for r in ratios:
        print(r)


if __name__ == "__main__":
    main()
