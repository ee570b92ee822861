"""Calibrate each detector's crop rule on FER-2013, and measure its box spread: writes
``fer_edge/assets/face_crops.json`` (read by :mod:`fer_edge.detect.crops`). Light tier.

    python -m fer_edge.detect.calibrate --data ../shared/data/fer2013.npz --n 2000

FER-2013 Training faces (upright) are upscaled and pasted into 640x480 frames
(:func:`fer_edge.data.paste.pasted_frames`) at known boxes; each detector runs on the frame; the
detection that overlaps the true face best (IoU > 0.3) is compared with it. The median box
relative to the face gives the crop rule that turns that detector's box back into a
FER-2013-framed face:

    scale   = 1 / median(box side / face side)
    shift_y = -median((box centre y - face centre y) / face side)

(with ``align`` on for detectors that give eye keypoints). The spread (median and std of the
centre offsets, side ratio and eye-line angle) is the data for crop-jitter augmentation
(:func:`fer_edge.detect.crops.box_spread`). Detectors not measured in a run keep the rules the
file already holds; ``--csv`` also writes one row per detector (rows of other detectors in an
existing file are kept).
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
from fer_edge.detect.crops import CALIBRATION_FILE
from fer_edge.detect.defaults import REFINE
from fer_edge.detect.detection import Detection, FaceDetector
from fer_edge.detect.finder import build_detector
from fer_edge.detect.geometry import iou
from fer_edge.errors import DataError, FerEdgeError, InputError
from fer_edge.io import atomic_write_csv, atomic_write_text, check_output_file
from fer_edge.preprocess import eye_angle

#: the detectors a run measures by default (the ones ``face_crops.json`` holds)
DETECTORS = ("blazeface-full", "blazeface-short", "haar", "blazeface-full+refine")
#: a detection counts as the pasted face when their IoU is above this
MATCH_IOU = 0.3
#: pasted face sides, pixels of the 640x480 frame
SIDES = (60, 240)


def match(dets: list[Detection], box: tuple) -> Detection | None:
    """The detection overlapping ``box`` (x, y, w, h) best (IoU > :data:`MATCH_IOU`), or
    None."""
    best = max(dets, key=lambda d: iou(d.box, box), default=None)
    return best if best is not None and iou(best.box, box) > MATCH_IOU else None


def box_errors(det: FaceDetector, faces: np.ndarray, seed: int) -> np.ndarray:
    """How a detector boxes the pasted faces.

    Args:
        det: the detector (``detect_faces``).
        faces: (N, 48, 48) uint8 grey FER-2013 faces.
        seed: seed of the pasting (positions, sides, backgrounds).

    Returns:
        (M, 4) float64, one row per face found: (box centre - face centre) / face side in x
        and y, box side (max(w, h)) / face side, eye-line angle in degrees (0 without eyes).
    """
    rows = []
    for p in pasted_frames(faces, seed=seed, sides=SIDES, max_angle=0.0):
        d = match(det.detect_faces(p.frame), p.box)
        if d is None:
            continue
        fx, fy, fs, _ = p.box
        bx, by, bw, bh = d.box
        side = max(bw, bh)
        rows.append(((bx + bw / 2 - fx - fs / 2) / fs, (by + bh / 2 - fy - fs / 2) / fs,
                     side / fs, eye_angle(d.eyes) if d.eyes is not None else 0.0))
    return np.array(rows, np.float64).reshape(-1, 4)


def has_eyes(name: str) -> bool:
    """Whether detector ``name`` gives eye keypoints (its crops are then aligned)."""
    return name.startswith("blazeface") or name == "yunet" or name.endswith(REFINE)


def measure(name: str, faces: np.ndarray, seed: int, det: FaceDetector | None = None) -> dict:
    """Detector ``name``'s crop rule and box spread on pasted faces.

    Args:
        faces: (N, 48, 48) uint8 grey FER-2013 faces.
        seed: seed of the pasting.
        det: the detector ``name`` names, if already built.

    Returns:
        {"crop": CropRule fields, "spread": BoxSpread fields, "found": faces found,
        "tried": N}, rounded as ``face_crops.json`` stores them.

    Raises:
        DataError: the detector found none of the faces.
    """
    a = box_errors(det or build_detector(name), faces, seed)
    if not len(a):
        raise DataError(f"{name} found none of the {len(faces)} pasted faces; check that "
                        "--data holds FER-2013 faces")
    med, sd = np.median(a, 0), a.std(0)
    eyes = has_eyes(name)
    crop = {"square": True, "scale": round(float(1 / med[2]), 4),
            "shift_y": round(float(-med[1]), 4), "source_size": 48, "align": eyes}
    spread = {"n": len(a), "dx": [round(float(med[0]), 4), round(float(sd[0]), 4)],
              "dy": [round(float(med[1]), 4), round(float(sd[1]), 4)],
              "size": [round(float(med[2]), 4), round(float(sd[2]), 4)],
              "angle_deg": [round(float(med[3]), 2), round(float(sd[3]), 2)] if eyes
              else [0.0, 0.0]}
    return {"crop": crop, "spread": spread, "found": len(a), "tried": len(faces)}


def training_faces(data: str | Path, n: int, seed: int) -> np.ndarray:
    """``n`` FER-2013 Training faces picked at random (seeded), in file order.

    Args:
        data: ``fer2013.npz`` (``images`` (N, 48, 48) uint8, ``usage`` (N,) 0 = Training).

    Returns:
        (n, 48, 48) uint8 grey faces.

    Raises:
        DataError: the file is missing or not a FER-2013 npz.
        InputError: ``n`` is not between 1 and the number of Training faces.
    """
    path = Path(data)
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise DataError(f"{path}: {what}; pass --data pointing at fer2013.npz")
    try:
        d = np.load(path)
        usage, images = d["usage"], d["images"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a FER-2013 .npz with images and usage "
                        f"({str(exc).splitlines()[0][:80]})") from None
    train = np.flatnonzero(usage == 0)
    if not 1 <= n <= len(train):
        raise InputError(f"--n {n}: use 1 to {len(train)} (the Training faces of {path.name})")
    pick = np.random.default_rng(seed).choice(train, n, replace=False)
    return images[np.sort(pick)]


def csv_row(name: str, n: int, r: dict) -> dict:
    """One ``--csv`` row for detector ``name`` from :func:`measure`'s result ``r``."""
    s = r["spread"]
    return {"detector": name, "faces": n, "found": r["found"],
            "scale": r["crop"]["scale"], "shift_y": r["crop"]["shift_y"],
            "align": r["crop"]["align"], "dx_median": s["dx"][0], "dx_std": s["dx"][1],
            "dy_median": s["dy"][0], "dy_std": s["dy"][1],
            "size_median": s["size"][0], "size_std": s["size"][1],
            "angle_median": s["angle_deg"][0], "angle_std": s["angle_deg"][1]}


def _kept_detectors(path: Path) -> dict:
    """The detectors an existing calibration file holds (kept when not measured again)."""
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text())["detectors"])
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{path}: not a crop calibration file (no detectors); give another "
                        "--out or delete it") from None


def _kept_rows(path: Path | None, measured: tuple[str, ...]) -> list[dict]:
    """Rows of an existing ``--csv`` for the detectors not measured this time."""
    if path is None or not path.is_file():
        return []
    with path.open() as f:
        reader = csv.DictReader(f)
        if "detector" not in (reader.fieldnames or ()):
            raise DataError(f"{path}: not a calibration CSV (no detector column); give another "
                            "--csv or delete it")
        return [r for r in reader if r["detector"] not in measured]


def calibrate(data: str | Path, n: int = 2000, seed: int = 0,
              detectors: tuple[str, ...] = DETECTORS, out: str | Path = CALIBRATION_FILE,
              csv_path: str | Path | None = None, script: str = "fer_edge.detect.calibrate",
              echo=print) -> dict:
    """Measure the crop rule and box spread of each detector and write them.

    Args:
        data: ``fer2013.npz``.
        n: Training faces to paste.
        seed: seed of the pick and the pasting.
        detectors: detector names to measure (see :func:`~fer_edge.detect.build_detector`).
        out: the calibration file to write (default the package's ``face_crops.json``);
            detectors it holds that are not measured now keep their entries.
        csv_path: also write one row per detector here (None: no CSV).
        script: what the file records as its maker.
        echo: called with each detector's row as it is measured.

    Returns:
        The calibration written to ``out`` (``detectors`` -> name -> crop, spread).

    Raises:
        DataError, InputError, ConfigError, OutputError: bad data, ``n``, detector name or
            output; nothing is written then.
    """
    out = check_output_file(out, "--out", force=True)  # updated in place: kept entries
    csv_path = None if csv_path is None else check_output_file(csv_path, "--csv", force=True)
    built = {name: build_detector(name) for name in detectors}  # bad names fail first
    faces = training_faces(data, n, seed)
    result = {"data": Path(data).name, "split": "Training", "n": n, "seed": seed,
              "frame": "640x480", "sides": list(SIDES), "date": dt.date.today().isoformat(),
              "script": script, "detectors": _kept_detectors(out)}
    rows = _kept_rows(csv_path, tuple(detectors))
    for name in detectors:
        r = measure(name, faces, seed, built[name])
        result["detectors"][name] = {"crop": r["crop"], "spread": r["spread"]}
        rows.append(csv_row(name, n, r))
        echo(rows[-1])
    atomic_write_text(out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    if csv_path is not None:
        atomic_write_csv(csv_path, rows)
    return result


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.detect.calibrate",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="fer2013.npz")
    ap.add_argument("--n", type=int, default=2000, help="Training faces to paste")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detectors", default=",".join(DETECTORS),
                    help="comma-separated detector names")
    ap.add_argument("--out", default=str(CALIBRATION_FILE),
                    help="calibration file to write (default: the package's)")
    ap.add_argument("--csv", default="", help="also write one row per detector here")
    return ap


def main(argv: list[str] | None = None, script: str = "fer_edge.detect.calibrate") -> int:
    """The command; user errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        calibrate(args.data, args.n, args.seed, tuple(args.detectors.split(",")), args.out,
                  args.csv or None, script=script)
    except FerEdgeError as exc:
        print(f"calibrate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {args.out}" + (f" and {args.csv}" if args.csv else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
