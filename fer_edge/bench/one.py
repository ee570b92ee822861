"""One benchmark measurement in its own process. Light tier.

``fer-edge benchmark`` runs ``python -m fer_edge.bench.one BUILD --threads N ...`` once per
build and thread count, so each figure, peak memory above all, is that build's alone: in one
long process ``ru_maxrss`` only grows, and a 22 MB build measured after others read 702 MB
instead of its own 131 MB. Peak memory is ``VmHWM`` (the new program's own), not
``ru_maxrss``, which a child inherits from its parent on Linux. Prints one JSON object on
stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys

from fer_edge.options import LATENCY_RUNS

#: end-to-end FPS: passes over the clip until this many seconds have passed (at least 3)
MIN_E2E_SECONDS = 3.0
MIN_E2E_PASSES = 3


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB since it started (``VmHWM`` on Linux, which
    a new program starts afresh; ``ru_maxrss`` elsewhere, which on Linux also counts the
    parent's memory at fork: a benchmark that loaded big builds made every child read big)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def end_to_end(pred, video: str, min_seconds: float = MIN_E2E_SECONDS,
               min_passes: int = MIN_E2E_PASSES) -> dict:
    """Demo FPS over ``video`` (headless), repeated until ``min_seconds`` have passed and at
    least ``min_passes`` passes ran: median FPS with its min and max, and the median
    per-stage ms."""
    import time

    import numpy as np

    from fer_edge.demo.config import DemoConfig
    from fer_edge.demo.loop import run_demo

    runs, t0 = [], time.perf_counter()
    while len(runs) < min_passes or time.perf_counter() - t0 < min_seconds:
        runs.append(run_demo(DemoConfig(video=video, headless=True), predictor=pred).summary())
    fps = [r["fps"] for r in runs]
    return {"e2e_fps": round(float(np.median(fps)), 1), "e2e_fps_min": round(min(fps), 1),
            "e2e_fps_max": round(max(fps), 1), "e2e_passes": len(runs),
            "e2e_frames": runs[0]["frames"],
            "detect_ms": round(float(np.median([r["detect_ms"] for r in runs])), 2),
            "classify_ms": round(float(np.median([r["classify_ms"] for r in runs])), 2)}


def measure(build: str, threads: int, runs: int, video: str, face_npy: str = "",
            min_seconds: float = MIN_E2E_SECONDS) -> dict:
    """Batch-1 latency (median, p90 ms) and, with ``video``, end-to-end demo FPS (median,
    min, max over passes of at least ``min_seconds`` in all) and per-stage ms, and this
    process's peak memory (MB), for one build at ``threads`` threads. Only this build is
    loaded in this process."""
    import numpy as np

    from fer_edge.evaluate import latency_ms
    from fer_edge.preprocess import to_model_input
    from fer_edge.runtime import load_predictor

    pred = load_predictor(build, num_threads=threads)
    face = np.load(face_npy) if face_npy else np.zeros((1, 48, 48), np.uint8)
    lat = latency_ms(pred, to_model_input(face, pred.spec), runs)
    row = {"latency_ms_median": round(lat["median"], 3), "latency_ms_p90": round(lat["p90"], 3)}
    if video:
        row.update(end_to_end(pred, video, min_seconds))
    row["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--runs", type=int, default=LATENCY_RUNS)
    ap.add_argument("--video", default="")
    ap.add_argument("--face", default="", help=".npy of one (1, h, w) uint8 face")
    ap.add_argument("--min-seconds", type=float, default=MIN_E2E_SECONDS)
    a = ap.parse_args(argv)
    from fer_edge.errors import FerEdgeError

    try:
        row = measure(a.build, a.threads, a.runs, a.video, a.face, a.min_seconds)
    except FerEdgeError as exc:
        print(f"{a.build}: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
