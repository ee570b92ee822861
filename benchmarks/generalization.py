"""Does a build hold up beyond FER-2013? One command, any builds, light tier only.

    python benchmarks/generalization.py fer_edge/assets/fer_default_int8.tflite [more builds]

Scores each ``.tflite`` / ``.onnx`` build through the light runtime the demo uses
(``fer_edge.runtime.load_predictor``, ``Predictor.predict`` with the spec's flip TTA, and
``Predictor.finder`` = detect -> align -> crop for the full-frame column) on:

- ``fer2013``: FER-2013 PrivateTest with its own labels (3,589 faces).
- ``ferplus``: the same faces with FER+ majority labels (``fer_edge.data.ferplus``; the 70 faces
  FER+ drops are left out: 3,519).
- ``ckplus48-image``: CK+48 (another dataset: posed, lab-lit, 106 people), every image of the 6
  classes it shares with FER-2013 (``contempt`` skipped; no neutral), argmax over all 7 classes,
  so a "neutral" answer counts as wrong.
- ``ckplus48-subject``: the same predictions, accuracy per person averaged over people (each
  subject counts once however many images it has; CK+48 has 3 near-identical frames per
  sequence, so per-image figures over-weight people with many sequences).
- ``pasted``: PrivateTest faces pasted into 640x480 frames (``fer_edge.data.paste``: side
  30-300 px log-uniform, random position, in-plane rotation +-30 deg, seed 0), found by the
  detector, aligned and cropped by the product's ``FaceFinder``; a face the detector misses
  (no box with IoU >= 0.3 with the true square) counts as wrong. ``found`` gives the detection
  rate and ``accuracy_found`` the accuracy on the faces found.

``--peer-probs`` adds rows for another system's probabilities on the same faces (the ``fer``
package: ``benchmarks/peer_fer/generalization_fer.py`` writes them from its own venv, on the
faces this script exports with ``--export-faces``, and on the same pasted frames through
fer's own detect-and-classify pipeline).

Writes ``benchmarks/results/generalization.csv`` (one row per build and set: n, accuracy,
macro-F1 over the classes present, per-class recall) and regenerates the README tables.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_edge.data.ferplus import read_ferplus  # noqa: E402
from fer_edge.data.readers import _read_image, scan_class_folders  # noqa: E402
from fer_edge.evaluate import predict_all  # noqa: E402
from fer_edge.io import atomic_write_csv  # noqa: E402
from fer_edge.metrics import classification_report  # noqa: E402
from fer_edge.runtime import load_predictor  # noqa: E402
from fer_edge.spec import FER2013_LABELS  # noqa: E402

log = logging.getLogger("generalization")
DATA = ROOT.parent / "shared" / "data"
IOU_MIN = 0.3


def load_sets(data: Path, ferplus: Path, ckplus: Path) -> dict:
    """Faces and labels of every set (the same for every build).

    Returns:
        dict with ``test`` (N, 48, 48) uint8 PrivateTest faces, ``y_fer`` (N,) int64,
        ``ferplus_keep`` (N,) bool, ``y_ferplus`` (N,) int64 (-1 where dropped), ``ck`` (M, 48,
        48) uint8 CK+48 faces, ``y_ck`` (M,), ``ck_subject`` (M,) str.
    """
    d = np.load(data)
    test = d["usage"] == 2
    out = {"test": np.ascontiguousarray(d["images"][test]),
           "y_fer": d["labels"][test].astype(np.int64)}
    fp = read_ferplus(ferplus, expected_rows=len(d["labels"]))
    out["ferplus_keep"] = fp.keep[test]
    out["y_ferplus"] = fp.majority()[test]
    notes: list[str] = []
    items = scan_class_folders(ckplus, skip_unknown=True, notes=notes)
    out["ck"] = np.stack([_read_image(p, False) for p, _ in items])
    out["y_ck"] = np.array([c for _, c in items], np.int64)
    out["ck_subject"] = np.array([p.name.split("_")[0] for p, _ in items])
    log.info("PrivateTest %d faces (FER+ keeps %d); CK+48 %d images of %d subjects (%s)",
             len(out["y_fer"]), int(out["ferplus_keep"].sum()), len(out["y_ck"]),
             len(set(out["ck_subject"])), "; ".join(notes))
    return out


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter + 1e-9)


def pasted_crops(preds: dict, faces: np.ndarray, n: int, detector: str, seed: int = 0
                 ) -> tuple[np.ndarray, dict[str, list]]:
    """Paste the first ``n`` faces into frames and run each build's detect -> align -> crop.

    Returns:
        (n,) int64 face indices, and per build a list of (48, 48) uint8 crops or None (missed).
    """
    from fer_edge.data.paste import pasted_frames

    idx = np.arange(min(n, len(faces)))
    crops: dict[str, list] = {k: [] for k in preds}
    finders = {k: p.finder(detector) for k, p in preds.items()}
    t0 = time.time()
    for j, pf in enumerate(pasted_frames(faces, seed=seed, sides=(30, 300), max_angle=30.0,
                                         indices=idx)):
        for k, finder in finders.items():
            found = finder(pf.frame)
            best = max(found, key=lambda f: iou(f.box, pf.box), default=None)
            ok = best is not None and iou(best.box, pf.box) >= IOU_MIN
            crops[k].append(best.crop if ok else None)
        if (j + 1) % 500 == 0:
            log.info("  pasted: %d/%d frames (%.0fs)", j + 1, len(idx), time.time() - t0)
    return idx, crops


def row(build: str, set_name: str, labels: str, y: np.ndarray, pred: np.ndarray,
        **extra) -> dict:
    """One CSV row; ``pred`` may hold 7 = "missed" (no face found), which is never right."""
    rep = classification_report(y, pred, (*FER2013_LABELS, "missed"))
    rep["per_class"] = rep["per_class"][:len(FER2013_LABELS)]
    r = {"build": build, "set": set_name, "labels": labels, "n": rep["n"],
         "accuracy": f"{100 * rep['accuracy']:.2f}", "macro_f1": f"{100 * rep['macro_f1']:.2f}"}
    r.update({k: v for k, v in extra.items()})
    for c in rep["per_class"]:
        r[f"recall_{c['label']}"] = f"{100 * c['recall']:.1f}" if c["support"] else ""
    return r


def score(name: str, probs: dict[str, np.ndarray], sets: dict) -> list[dict]:
    """CSV rows of one system from its probabilities on ``test``, ``ck`` (and ``pasted``)."""
    rows = []
    p_test = probs["test"].argmax(1)
    rows.append(row(name, "fer2013-privatetest", "fer2013", sets["y_fer"], p_test))
    k = sets["ferplus_keep"]
    rows.append(row(name, "fer2013-privatetest", "ferplus-majority", sets["y_ferplus"][k],
                    p_test[k]))
    p_ck = probs["ck"].argmax(1)
    rows.append(row(name, "ckplus48-image", "ckplus48 (6 classes)", sets["y_ck"], p_ck))
    subj = sets["ck_subject"]
    per_subject = [np.mean(p_ck[subj == s] == sets["y_ck"][subj == s]) for s in np.unique(subj)]
    r = row(name, "ckplus48-subject", "ckplus48 (6 classes)", sets["y_ck"], p_ck,
            subjects=len(per_subject))
    r["accuracy"] = f"{100 * float(np.mean(per_subject)):.2f}"
    r["macro_f1"] = ""
    for c, lab in enumerate(FER2013_LABELS):  # per class: mean over the subjects showing it
        m = sets["y_ck"] == c
        if m.any():
            rec = [np.mean(p_ck[m & (subj == s)] == c) for s in np.unique(subj[m])]
            r[f"recall_{lab}"] = f"{100 * float(np.mean(rec)):.1f}"
    rows.append(r)
    if "pasted" in probs:
        idx, found, pp = probs["pasted_idx"], probs["pasted_found"], probs["pasted"]
        pred = np.where(found, pp.argmax(1), len(FER2013_LABELS))
        y = sets["y_fer"][idx]
        rows.append(row(name, "pasted-frames", "fer2013", y, pred,
                        found=f"{100 * float(found.mean()):.1f}",
                        accuracy_found=f"{100 * float(np.mean(pred[found] == y[found])):.2f}"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="*", help=".tflite / .onnx builds (default: packaged)")
    ap.add_argument("--data", type=Path, default=DATA / "fer2013.npz")
    ap.add_argument("--ferplus", type=Path, default=DATA / "ferplus" / "fer2013new.csv")
    ap.add_argument("--ckplus", type=Path, default=DATA / "ckplus48")
    ap.add_argument("--pasted", type=int, default=3589,
                    help="PrivateTest faces through the full-frame pipeline (0 = skip)")
    ap.add_argument("--detector", default="auto", help="detector of the full-frame pipeline")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--peer-probs", type=Path, action="append", default=[],
                    help="npz of another system's probabilities (arrays name, test, ck)")
    ap.add_argument("--export-faces", type=Path, help="write the faces (npz) for a peer, exit")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                    "generalization.csv")
    ap.add_argument("--no-tables", action="store_true", help="do not regenerate README tables")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for p in (args.data, args.ferplus, args.ckplus):
        if not p.exists():
            print(f"generalization: {p} not found; pass --data/--ferplus/--ckplus",
                  file=sys.stderr)
            return 2
    sets = load_sets(args.data, args.ferplus, args.ckplus)
    if args.export_faces:
        np.savez_compressed(args.export_faces, test=sets["test"], ck=sets["ck"])
        print(f"faces for a peer: {args.export_faces}")
        return 0
    builds = [Path(b) for b in args.builds] or [ROOT / "fer_edge/assets/fer_default_int8.tflite"]
    preds = {b.name: load_predictor(b, args.threads) for b in builds}
    rows = []
    probs: dict[str, dict] = {k: {} for k in preds}
    for k, p in preds.items():
        probs[k]["test"] = predict_all(p, sets["test"], desc=f"{k} PrivateTest")
        probs[k]["ck"] = predict_all(p, sets["ck"], desc=f"{k} CK+48")
    if args.pasted:
        idx, crops = pasted_crops(preds, sets["test"], args.pasted, args.detector)
        for k, p in preds.items():
            found = np.array([c is not None for c in crops[k]])
            probs[k]["pasted_idx"], probs[k]["pasted_found"] = idx, found
            faces = np.stack([c if c is not None else np.zeros((48, 48), np.uint8)
                              for c in crops[k]])
            probs[k]["pasted"] = predict_all(p, faces, desc=f"{k} pasted")
    for k in preds:
        rows += score(k, probs[k], sets)
    for f in args.peer_probs:
        d = np.load(f)
        rows += score(str(d["name"]), {k: d[k] for k in d.files if k != "name"}, sets)
    atomic_write_csv(args.out, rows)
    print(f"wrote {args.out}")
    for r in rows:
        print(f"{r['build']:40s} {r['set']:22s} {r['labels']:22s} n={r['n']:5d} "
              f"acc {r['accuracy']}%" + (f" found {r['found']}%" if r.get("found") else ""))
    if not args.no_tables:
        import subprocess

        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_tables.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
