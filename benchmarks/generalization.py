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

- ``tfeid_dev-photo``: real people (``../shared/data/tfeid_dev``, TFEID performers: posed
  colour photos, 256x256; 623 labelled photos of 14 people, 7 classes) through the whole
  pipeline as a user runs it: ``fer_edge.load(build).analyze(cv2.imread(photo))`` (BGR; detect
  -> align -> crop -> classify with flip TTA), the largest face is the answer; a photo where
  no face is found counts as wrong (``found`` gives the share found). Scored by the
  product's ``fer_edge.evaluate_people`` on ``fer_edge.data.people.scan_people``.
- ``tfeid_dev-person``: the same answers, accuracy per person averaged over people (per class:
  the mean over the people showing it); ``tfeid_dev-person-PP``: one row per person PP.
  Skipped with a note when the folder is absent (``--tfeid``).

``--sets`` picks the sets (default all: ``fer2013`` = FER-2013, FER+ and pasted rows,
``ckplus``, ``tfeid``); ``--tfeid-per-person N`` scores the first N photos of each person
(a quick look; the default is all).

``--peer-probs`` adds rows for another system's probabilities on the same faces (the ``fer``
package: ``benchmarks/peer_fer/generalization_fer.py`` writes them from its own venv, on the
faces this script exports with ``--export-faces``, and on the same pasted frames through
fer's own detect-and-classify pipeline, and on the tfeid_dev photos the same way: fer's own
detector on the photo, its largest face).

Needs fer-edge importable (``pip install -e .``, or ``PYTHONPATH`` at the clone).
Writes ``benchmarks/results/generalization.csv`` (``--out``; one row per build and set: n,
accuracy, macro-F1 over the classes present, per-class recall) and regenerates the README
tables.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from fer_edge.data.ferplus import read_ferplus
from fer_edge.data.people import scan_people
from fer_edge.data.readers import _read_image, scan_class_folders
from fer_edge.errors import FerEdgeError
from fer_edge.evaluate import predict_all
from fer_edge.evaluate_people import people_report, predict_photos
from fer_edge.io import atomic_write_csv
from fer_edge.metrics import classification_report
from fer_edge.runtime import load_predictor
from fer_edge.spec import FER2013_LABELS

ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("generalization")
DATA = ROOT.parent / "shared" / "data"
IOU_MIN = 0.3
SETS = ("fer2013", "ckplus", "tfeid")


def load_fer(data: Path, ferplus: Path) -> dict:
    """PrivateTest faces with FER-2013 and FER+ labels.

    Returns:
        dict with ``test`` (N, 48, 48) uint8 grey faces, ``y_fer`` (N,) int64,
        ``ferplus_keep`` (N,) bool, ``y_ferplus`` (N,) int64 (-1 where dropped).
    """
    d = np.load(data)
    test = d["usage"] == 2
    out = {"test": np.ascontiguousarray(d["images"][test]),
           "y_fer": d["labels"][test].astype(np.int64)}
    fp = read_ferplus(ferplus, expected_rows=len(d["labels"]))
    out["ferplus_keep"] = fp.keep[test]
    out["y_ferplus"] = fp.majority()[test]
    log.info("PrivateTest %d faces (FER+ keeps %d)", len(out["y_fer"]),
             int(out["ferplus_keep"].sum()))
    return out


def load_ck(ckplus: Path) -> dict:
    """CK+48 faces of the 6 classes shared with FER-2013.

    Returns:
        dict with ``ck`` (M, 48, 48) uint8 grey faces, ``y_ck`` (M,) int64, ``ck_subject``
        (M,) str.
    """
    notes: list[str] = []
    items = scan_class_folders(ckplus, skip_unknown=True, notes=notes)
    out = {"ck": np.stack([_read_image(p, False) for p, _ in items]),
           "y_ck": np.array([c for _, c in items], np.int64),
           "ck_subject": np.array([p.name.split("_")[0] for p, _ in items])}
    log.info("CK+48 %d images of %d subjects (%s)", len(out["y_ck"]),
             len(set(out["ck_subject"])), "; ".join(notes))
    return out


def load_tfeid(folder: Path, per_person: int = 0) -> dict:
    """tfeid_dev's labelled photos (``fer_edge.data.people.PersonPhoto``), the first
    ``per_person`` of each person (0 = all)."""
    photos, skipped = scan_people(folder)
    if per_person:
        kept: dict[str, list] = {}
        for p in photos:
            kept.setdefault(p.person, []).append(p)
        photos = [p for person in sorted(kept) for p in kept[person][:per_person]]
    log.info("tfeid_dev %d labelled photos of %d people (%d unlabelled skipped)", len(photos),
             len({p.person for p in photos}), skipped)
    return {"photos": photos}


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


def report_row(build: str, set_name: str, labels: str, rep: dict, **extra) -> dict:
    """One CSV row from a ``classification_report`` (per-class recall by label name)."""
    r = {"build": build, "set": set_name, "labels": labels, "n": rep["n"],
         "accuracy": f"{100 * rep['accuracy']:.2f}", "macro_f1": f"{100 * rep['macro_f1']:.2f}"}
    r.update(extra)
    for c in rep["per_class"]:
        if c["label"] in FER2013_LABELS:
            r[f"recall_{c['label']}"] = f"{100 * c['recall']:.1f}" if c["support"] else ""
    return r


def row(build: str, set_name: str, labels: str, y: np.ndarray, pred: np.ndarray,
        **extra) -> dict:
    """One CSV row; ``pred`` may hold 7 = "missed" (no face found), which is never right."""
    rep = classification_report(y, pred, (*FER2013_LABELS, "missed"))
    rep["per_class"] = rep["per_class"][:len(FER2013_LABELS)]
    return report_row(build, set_name, labels, rep, **extra)


def score_fer(name: str, probs: dict, sets: dict) -> list[dict]:
    """FER-2013 and FER+ rows of PrivateTest."""
    p_test = probs["test"].argmax(1)
    k = sets["ferplus_keep"]
    return [row(name, "fer2013-privatetest", "fer2013", sets["y_fer"], p_test),
            row(name, "fer2013-privatetest", "ferplus-majority", sets["y_ferplus"][k],
                p_test[k])]


def score_pasted(name: str, probs: dict, sets: dict) -> list[dict]:
    """The pasted-frames row: a face the detector missed counts as wrong."""
    idx, found, pp = probs["pasted_idx"], probs["pasted_found"], probs["pasted"]
    pred = np.where(found, pp.argmax(1), len(FER2013_LABELS))
    y = sets["y_fer"][idx]
    return [row(name, "pasted-frames", "fer2013", y, pred,
                found=f"{100 * float(found.mean()):.1f}",
                accuracy_found=f"{100 * float(np.mean(pred[found] == y[found])):.2f}")]


def score_ck(name: str, probs: dict, sets: dict) -> list[dict]:
    """CK+48 rows: per image, and per subject (each subject counts once)."""
    p_ck = probs["ck"].argmax(1)
    rows = [row(name, "ckplus48-image", "ckplus48 (6 classes)", sets["y_ck"], p_ck)]
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
    return rows


def score_tfeid(name: str, probs: dict, sets: dict, labels: tuple[str, ...]) -> list[dict]:
    """tfeid_dev rows: all photos, the mean over people, and one row per person."""
    rep = people_report(sets["photos"], probs["tfeid"], probs["tfeid_found"], labels)
    what = "tfeid (7 classes)"
    pct = f"{100 * rep['found']:.1f}"
    rows = [report_row(name, "tfeid_dev-photo", what, rep["all"], found=pct)]
    mean = rep["person_mean"]
    r = report_row(name, "tfeid_dev-person", what, rep["all"], subjects=mean["people"],
                   found=pct)
    r["accuracy"], r["macro_f1"] = f"{100 * mean['accuracy']:.2f}", ""
    r.update({f"recall_{k}": f"{100 * v:.1f}" for k, v in mean["recall"].items()})
    rows.append(r)
    for person, pr in rep["per_person"].items():
        rows.append(report_row(name, f"tfeid_dev-person-{person}", what, pr,
                               found=f"{100 * pr['found']:.1f}"))
    return rows


def score(name: str, probs: dict[str, np.ndarray], sets: dict,
          labels: tuple[str, ...] = FER2013_LABELS) -> list[dict]:
    """CSV rows of one system from its probabilities on the sets it was run on (``test``,
    ``pasted``, ``ck``, ``tfeid``)."""
    rows = []
    if "test" in probs:
        rows += score_fer(name, probs, sets)
    if "ck" in probs:
        rows += score_ck(name, probs, sets)
    if "pasted" in probs:
        rows += score_pasted(name, probs, sets)
    if "tfeid" in probs:
        rows += score_tfeid(name, probs, sets, labels)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="*", help=".tflite / .onnx builds (default: packaged)")
    ap.add_argument("--data", type=Path, default=DATA / "fer2013.npz")
    ap.add_argument("--ferplus", type=Path, default=DATA / "ferplus" / "fer2013new.csv")
    ap.add_argument("--ckplus", type=Path, default=DATA / "ckplus48")
    ap.add_argument("--tfeid", type=Path, default=None,
                    help=f"folder of people's photos (default {DATA / 'tfeid_dev'}, skipped "
                         "with a note when absent)")
    ap.add_argument("--tfeid-per-person", type=int, default=0,
                    help="score the first N photos of each person (0 = all)")
    ap.add_argument("--sets", default=",".join(SETS),
                    help=f"comma-separated sets to score (default all: {','.join(SETS)})")
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
    return ap.parse_args(argv)


def check_inputs(args: argparse.Namespace) -> list[str] | str:
    """The sets to run, or a one-line error naming the missing input."""
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    bad = [s for s in sets if s not in SETS]
    if bad or not sets:
        return f"--sets {args.sets}: choose among {','.join(SETS)}"
    need = {"fer2013": (args.data, args.ferplus), "ckplus": (args.ckplus,)}
    for p in (p for s in sets for p in need.get(s, ())):
        if not p.exists():
            return f"{p} not found; pass --data/--ferplus/--ckplus, or leave its set out of --sets"
    if "tfeid" in sets and args.tfeid is None and not (DATA / "tfeid_dev").is_dir():
        log.info("tfeid_dev rows skipped: %s not found (pass --tfeid DIR)", DATA / "tfeid_dev")
        sets.remove("tfeid")
    elif "tfeid" in sets and args.tfeid is not None and not args.tfeid.is_dir():
        return f"--tfeid {args.tfeid}: no such folder"
    return sets


def load_sets(args: argparse.Namespace, sets: list[str]) -> dict:
    """Faces, photos and labels of every set asked for (the same for every build)."""
    out: dict = {}
    if "fer2013" in sets:
        out.update(load_fer(args.data, args.ferplus))
    if "ckplus" in sets:
        out.update(load_ck(args.ckplus))
    if "tfeid" in sets:
        out.update(load_tfeid(args.tfeid or DATA / "tfeid_dev", args.tfeid_per_person))
    return out


def predict_sets(preds: dict, sets: dict, n_pasted: int, detector: str) -> dict[str, dict]:
    """Per build: probabilities on every loaded set (``test``, ``ck``, ``pasted``, ``tfeid``)."""
    probs: dict[str, dict] = {k: {} for k in preds}
    for k, p in preds.items():
        if "test" in sets:
            probs[k]["test"] = predict_all(p, sets["test"], desc=f"{k} PrivateTest")
        if "ck" in sets:
            probs[k]["ck"] = predict_all(p, sets["ck"], desc=f"{k} CK+48")
        if "photos" in sets:
            probs[k]["tfeid"], probs[k]["tfeid_found"] = predict_photos(p, sets["photos"])
    if n_pasted and "test" in sets:
        idx, crops = pasted_crops(preds, sets["test"], n_pasted, detector)
        for k, p in preds.items():
            found = np.array([c is not None for c in crops[k]])
            probs[k]["pasted_idx"], probs[k]["pasted_found"] = idx, found
            faces = np.stack([c if c is not None else np.zeros((48, 48), np.uint8)
                              for c in crops[k]])
            probs[k]["pasted"] = predict_all(p, faces, desc=f"{k} pasted")
    return probs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    sets_asked = check_inputs(args)
    if isinstance(sets_asked, str):
        print(f"generalization: {sets_asked}", file=sys.stderr)
        return 2
    try:
        return run(args, sets_asked)
    except FerEdgeError as exc:
        print(f"generalization: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, sets_asked: list[str]) -> int:
    sets = load_sets(args, sets_asked)
    if args.export_faces:
        photos = [str(ph.path) for ph in sets.get("photos", [])]
        faces = {k: sets[k] for k in ("test", "ck") if k in sets}
        np.savez_compressed(args.export_faces, **faces, tfeid_paths=np.array(photos, dtype=str))
        print(f"faces for a peer: {args.export_faces}")
        return 0
    builds = [Path(b) for b in args.builds] or [ROOT / "fer_edge/assets/fer_default_int8.tflite"]
    preds = {b.name: load_predictor(b, args.threads) for b in builds}
    probs = predict_sets(preds, sets, args.pasted, args.detector)
    rows = []
    for k, p in preds.items():
        rows += score(k, probs[k], sets, p.spec.labels)
    for f in args.peer_probs:
        d = np.load(f)
        rows += score(str(d["name"]), {k: d[k] for k in d.files if k != "name"}, sets)
    atomic_write_csv(args.out, rows)
    print(f"wrote {args.out}")
    for r in rows:
        print(f"{r['build']:40s} {r['set']:24s} {r['labels']:22s} n={r['n']:5d} "
              f"acc {r['accuracy']}%" + (f" found {r['found']}%" if r.get("found") else ""))
    if not args.no_tables:
        import subprocess

        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_tables.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
