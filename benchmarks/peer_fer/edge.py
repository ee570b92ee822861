"""Measure fer-edge the way measure.py measures the `fer` package (run by run.sh in fer-edge's
light venv, so TensorFlow is not installed and cannot be imported).

Accuracy: PrivateTest faces through the shared preprocessing and the build (flip TTA when the
build's spec asks for it, as the demo does). Speed: classifier ms per face at batch 1 as the
demo runs it (``predict`` on one 48x48 uint8 grey crop: resize, normalise, 1 or 2 passes),
and end-to-end FPS of the demo loop on the packaged 640x480 clip, once with the demo's
defaults and once detecting and classifying every frame (what `fer`'s ``detect_emotions``
does), at each thread count. One JSON object per row on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="", help="build to measure (default: the packaged one)")
    ap.add_argument("--venv-mb", type=float, default=0)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    if not Path(args.data).is_file():
        sys.exit(f"skipped: FER-2013 not found at {args.data}")
    from fer_edge.data import load_dataset
    from fer_edge.demo.config import DemoConfig
    from fer_edge.demo.loop import run_demo
    from fer_edge.metrics import classification_report
    from fer_edge.runtime import load_predictor

    ds = load_dataset(args.data)
    x, y = ds.images["test"], ds.labels["test"]
    for n in [int(t) for t in args.threads.split(",")]:
        cv2.setNumThreads(n)  # as measure.py does for fer's Haar detector
        pred = load_predictor(args.model or None, num_threads=n)
        probs = np.concatenate([pred.predict(x[i:i + 256]) for i in range(0, len(x), 256)])
        rep = classification_report(y, probs.argmax(1), pred.spec.labels)
        t = []
        for i in range(300):
            t0 = time.perf_counter()
            pred.predict(x[i:i + 1])
            t.append((time.perf_counter() - t0) * 1e3)
        t = t[20:]
        base = {"tool": f"fer-edge ({pred.path.name})", "threads": n, "n_test": len(y),
                "accuracy": round(rep["accuracy"], 4), "macro_f1": round(rep["macro_f1"], 4),
                **{f"recall_{c['label']}": round(c["recall"], 4) for c in rep["per_class"]},
                "classify_ms_median": round(float(np.median(t)), 3),
                "classify_ms_p90": round(float(np.percentile(t, 90)), 3),
                "install_mb": args.venv_mb, "cores": os.cpu_count(),
                "tensorflow_importable": _tf_importable()}
        for setting, kw in (("demo defaults", {}),
                            ("every frame", {"detect_every": 1, "classify_every": 1})):
            s = run_demo(DemoConfig(video="sample", headless=True, threads=n, **kw),
                         predictor=pred).summary()
            print(json.dumps({**base, "setting": setting, "e2e_fps": s["fps"],
                              "peak_rss_mb": s["peak_rss_mb"]}), flush=True)


def _tf_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


if __name__ == "__main__":
    main()
