"""One benchmark measurement in its own process. Light tier.

``fer-edge benchmark`` runs ``python -m fer_edge.bench.one BUILD --threads N ...`` once per
build and thread count, so each figure, peak memory above all, is that build's alone: in one
long process ``ru_maxrss`` only grows, and a 22 MB build measured after others read 702 MB
instead of its own 131 MB. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys


def measure(build: str, threads: int, runs: int, video: str, face_npy: str = "") -> dict:
    """Batch-1 latency (median, p90 ms) and, with ``video``, end-to-end demo FPS, per-stage
    ms and this process's peak memory (MB) for one build at ``threads`` threads."""
    import numpy as np

    from fer_edge.evaluate import latency_ms
    from fer_edge.preprocess import to_model_input
    from fer_edge.runtime import load_predictor

    pred = load_predictor(build, num_threads=threads)
    face = np.load(face_npy) if face_npy else np.zeros((1, 48, 48), np.uint8)
    lat = latency_ms(pred, to_model_input(face, pred.spec), runs)
    row = {"latency_ms_median": round(lat["median"], 3), "latency_ms_p90": round(lat["p90"], 3)}
    if video:
        from fer_edge.demo.config import DemoConfig
        from fer_edge.demo.loop import run_demo

        s = run_demo(DemoConfig(video=video, headless=True), predictor=pred).summary()
        row.update({"e2e_fps": s["fps"], "detect_ms": s["detect_ms"],
                    "classify_ms": s["classify_ms"]})
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--video", default="")
    ap.add_argument("--face", default="", help=".npy of one (1, h, w) uint8 face")
    a = ap.parse_args(argv)
    from fer_edge.errors import FerEdgeError

    try:
        row = measure(a.build, a.threads, a.runs, a.video, a.face)
    except FerEdgeError as exc:
        print(f"{a.build}: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
