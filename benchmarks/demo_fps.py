"""End-to-end demo speed on a fixed 640x480 video: FPS, per-stage ms, peak memory.

Runs ``fer_edge.demo.loop.run_demo`` (the real demo loop, headless, no window) on the packaged
sample clip (60 frames, 640x480, one face), replayed ``--repeat`` times, at each thread count,
each in a fresh subprocess so peak memory and TensorFlow-free imports are per run. Appends rows
to ``benchmarks/results/demo_fps.csv``.

    python benchmarks/demo_fps.py --model fer_edge/assets/fer_default_int8.tflite
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from fer_edge.bench.machine import cpu_name

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "demo_fps.csv"

CHILD = r"""
import json, sys, os
from fer_edge.demo.config import DemoConfig
from fer_edge.demo.loop import run_demo
from fer_edge.runtime import load_predictor
from fer_edge.demo.sources import SAMPLE_CLIP
import cv2
cv2.setNumThreads({threads})
pred = load_predictor({model!r}, num_threads={threads})
total = None
for _ in range({repeat}):
    s = run_demo(DemoConfig(video=str(SAMPLE_CLIP), headless=True, detect_every={detect_every},
                            detect_width={detect_width}, classify_every={classify_every}),
                 predictor=pred)
    total = s if total is None else total
    if total is not s:
        for k in ("detect_ms", "classify_ms", "draw_ms", "frame_ms"):
            getattr(total, k).extend(getattr(s, k))
        total.frames += s.frames
        total.seconds += s.seconds
out = total.summary()
out["tensorflow_imported"] = any(m.split(".")[0] == "tensorflow" for m in sys.modules)
print("RESULT " + json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help=".tflite/.onnx build")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--repeat", type=int, default=5, help="replays of the 60-frame clip")
    ap.add_argument("--detect-every", type=int, default=3)
    ap.add_argument("--classify-every", type=int, default=1)
    ap.add_argument("--detect-width", type=int, default=320)
    args = ap.parse_args()
    rows = []
    for n in [int(t) for t in args.threads.split(",")]:
        code = CHILD.format(threads=n, model=str(Path(args.model).resolve()),
                            repeat=args.repeat, detect_every=args.detect_every,
                            classify_every=args.classify_every,
                            detect_width=args.detect_width)
        env = dict(os.environ, OMP_NUM_THREADS=str(n))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        if r.returncode or not line:
            sys.exit(f"benchmark child failed:\n{r.stderr[-2000:]}")
        res = json.loads(line[0][7:])
        print(f"{n} thread(s): {res['fps']:.1f} FPS; median ms detect {res['detect_ms']}, "
              f"classify {res['classify_ms']}, draw {res['draw_ms']}, frame {res['frame_ms']}; "
              f"peak {res['peak_rss_mb']} MB; TensorFlow imported: {res['tensorflow_imported']}")
        rows.append({"date": dt.datetime.now().isoformat(timespec="seconds"),
                     "cpu": cpu_name(), "cores": os.cpu_count(),
                     "python": platform.python_version(),
                     "model": Path(args.model).name, "threads": n,
                     "detect_every": args.detect_every, "detect_width": args.detect_width,
                     "classify_every": args.classify_every,
                     **res})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.is_file()
    with RESULTS.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
