"""Calibrate each detector's crop rule on FER-2013 itself, and measure its box spread.

FER-2013 Training faces (upright) are upscaled and pasted into 640x480 frames
(``fer_edge.data.paste``) at known boxes; each detector runs on the frame; the detection that
overlaps the true face best (IoU > 0.3) is compared with it. The median box relative to the
face gives the crop rule that turns that detector's box back into a FER-2013-framed face:

    scale   = 1 / median(box side / face side)
    shift_y = -median((box centre y - face centre y) / face side)

(with ``align`` on for detectors that give eye keypoints). The spread (median and std of the
centre offsets, side ratio and eye-line angle) is the data for crop-jitter augmentation
(``fer_edge.faces.box_spread``).

Writes ``fer_edge/assets/face_crops.json`` (read by ``fer_edge.faces``; recorded into model
specs by ``convert/respec.py``) and ``studies/crop_calibration/results/crop_calibration.csv``.

    python studies/crop_calibration/calibrate_crops.py --data ../shared/data/fer2013.npz --n 2000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

from fer_edge.data.paste import pasted_frames
from fer_edge.demo.tracking import iou
from fer_edge.faces import CALIBRATION_FILE, build_detector
from fer_edge.io import atomic_write_csv, atomic_write_text
from fer_edge.preprocess import eye_angle

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "crop_calibration.csv"
DETECTORS = ("blazeface-full", "blazeface-short", "haar", "blazeface-full+refine")


def match(dets, box):
    """The detection overlapping ``box`` best (IoU > 0.3), or None."""
    best = max(dets, key=lambda d: iou(d.box, box), default=None)
    return best if best is not None and iou(best.box, box) > 0.3 else None


def measure(name: str, faces: np.ndarray, seed: int) -> dict:
    det = build_detector(name)
    rows = []
    for p in pasted_frames(faces, seed=seed, sides=(60, 240), max_angle=0.0):
        d = match(det.detect_faces(p.frame), p.box)
        if d is None:
            continue
        fx, fy, fs, _ = p.box
        bx, by, bw, bh = d.box
        side = max(bw, bh)
        rows.append(((bx + bw / 2 - fx - fs / 2) / fs, (by + bh / 2 - fy - fs / 2) / fs,
                     side / fs, eye_angle(d.eyes) if d.eyes is not None else 0.0))
    a = np.array(rows, np.float64).reshape(-1, 4)
    if not len(a):
        raise SystemExit(f"calibrate_crops: {name} found none of the pasted faces")
    med, sd = np.median(a, 0), a.std(0)
    has_eyes = name.startswith("blazeface") or name == "yunet" or name.endswith("+refine")
    crop = {"square": True, "scale": round(float(1 / med[2]), 4),
            "shift_y": round(float(-med[1]), 4), "source_size": 48, "align": has_eyes}
    spread = {"n": len(a), "dx": [round(float(med[0]), 4), round(float(sd[0]), 4)],
              "dy": [round(float(med[1]), 4), round(float(sd[1]), 4)],
              "size": [round(float(med[2]), 4), round(float(sd[2]), 4)],
              "angle_deg": [round(float(med[3]), 2), round(float(sd[3]), 2)] if has_eyes
              else [0.0, 0.0]}
    return {"crop": crop, "spread": spread, "found": len(a), "tried": len(faces)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="fer2013.npz")
    ap.add_argument("--n", type=int, default=2000, help="Training faces to paste")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    args = ap.parse_args()
    if not Path(args.data).is_file():
        sys.exit(f"calibrate_crops: {args.data} not found")
    d = np.load(args.data)
    train = np.flatnonzero(d["usage"] == 0)
    pick = np.random.default_rng(args.seed).choice(train, args.n, replace=False)
    faces = d["images"][np.sort(pick)]
    out = {"data": Path(args.data).name, "split": "Training", "n": args.n, "seed": args.seed,
           "frame": "640x480", "sides": [60, 240], "date": dt.date.today().isoformat(),
           "script": "studies/crop_calibration/calibrate_crops.py", "detectors": {}}
    if CALIBRATION_FILE.is_file():  # detectors not measured this time keep their rules
        out["detectors"] = json.loads(CALIBRATION_FILE.read_text()).get("detectors", {})
    rows = []
    if RESULTS.is_file():
        with RESULTS.open() as f:
            rows = [r for r in csv.DictReader(f)
                    if r["detector"] not in args.detectors.split(",")]
    for name in args.detectors.split(","):
        r = measure(name, faces, args.seed)
        out["detectors"][name] = {"crop": r["crop"], "spread": r["spread"]}
        s = r["spread"]
        rows.append({"detector": name, "faces": args.n, "found": r["found"],
                     "scale": r["crop"]["scale"], "shift_y": r["crop"]["shift_y"],
                     "align": r["crop"]["align"], "dx_median": s["dx"][0], "dx_std": s["dx"][1],
                     "dy_median": s["dy"][0], "dy_std": s["dy"][1],
                     "size_median": s["size"][0], "size_std": s["size"][1],
                     "angle_median": s["angle_deg"][0], "angle_std": s["angle_deg"][1]})
        print(rows[-1])
    atomic_write_text(CALIBRATION_FILE, json.dumps(out, indent=2, sort_keys=True) + "\n")
    atomic_write_csv(RESULTS, rows)
    print(f"wrote {CALIBRATION_FILE} and {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
