"""What detection, framing and eye alignment do to accuracy: FER-2013 PrivateTest faces pasted
into frames, through the full frame pipeline (detect -> align -> crop -> classify), against the
tight-crop accuracy (the model on the dataset's own 48x48 faces).

Every PrivateTest face is upscaled to a random side (30-300 px, log-uniform), rotated in-plane
(uniform +-``--max-angle`` deg) and pasted at a random place into a 640x480 textured frame
(``fer_edge.data.paste``). The detector's box that overlaps the true face best (IoU > 0.3) is
that face; each detection is cropped twice with the model's crop rule for that detector
(``fer_edge.detect.FaceFinder``): aligned (eyes level) and axis-aligned. Reported:

- ``recall``: faces detected;
- ``acc_end_to_end``: correct / all faces (a missed face counts as wrong);
- ``acc_detected``: correct / detected faces, and ``acc_tight_same_faces``: the tight-crop
  accuracy on those same faces; ``delta_pp`` = their difference, what framing + alignment
  cost.

Writes ``studies/pasted_accuracy/results/pasted_accuracy.csv`` (or ``--out``).

    python studies/pasted_accuracy/pasted_accuracy.py --data ../shared/data/fer2013.npz
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np

from fer_edge.data.paste import pasted_frames
from fer_edge.demo.tracking import iou
from fer_edge.detect import FaceFinder
from fer_edge.io import atomic_write_csv
from fer_edge.runtime import load_predictor

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "pasted_accuracy.csv"


def predict(pred, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([pred.predict(faces[i:i + batch]).argmax(1)
                           for i in range(0, len(faces), batch)]) if len(faces) else (
        np.zeros(0, int))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="fer2013.npz")
    ap.add_argument("--model", default="", help="build(s), comma-separated, scored on the same "
                    "frames and detections (default: packaged)")
    ap.add_argument("--detectors", default="blazeface-full,blazeface-short")
    ap.add_argument("--max-angles", default="30,0", help="rotation ranges to run, degrees")
    ap.add_argument("--n", type=int, default=0, help="PrivateTest faces (0 = all 3589)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS, help="results CSV (default: %(default)s)")
    args = ap.parse_args()
    if not Path(args.data).is_file():
        sys.exit(f"pasted_accuracy: {args.data} not found")
    d = np.load(args.data)
    test = np.flatnonzero(d["usage"] == 2)
    test = test[:args.n] if args.n else test
    faces, labels = d["images"][test], d["labels"][test].astype(int)
    preds = [load_predictor(m or None) for m in (args.model.split(",") if args.model else [""])]
    tight_ok = [predict(pred, faces) == labels for pred in preds]  # per build, by position
    for pred, ok in zip(preds, tight_ok):
        print(f"{pred.path.name}: tight crops accuracy {ok.mean():.4f} on {len(faces)}")
    rows = []
    for name in args.detectors.split(","):
        # one detection per frame; each model crops it with its own spec's rule
        detector = FaceFinder(preds[0].spec, name).detector
        finders = [(FaceFinder(p.spec, detector), FaceFinder(p.spec, detector, align=False), p)
                   for p in preds]
        for max_angle in (float(a) for a in args.max_angles.split(",")):
            idx = []
            crops = {(k, al): [] for k in range(len(finders)) for al in ("yes", "no")}
            for p in pasted_frames(faces, seed=args.seed, sides=(30, 300),
                                   max_angle=max_angle):
                dets = finders[0][0].detect(p.frame)
                scores = [iou(x.box, p.box) for x in dets]
                if not scores or max(scores) <= 0.3:
                    continue
                det = dets[int(np.argmax(scores))]
                idx.append(p.index)
                for k, (aligned, flat, _) in enumerate(finders):
                    for al, finder in (("yes", aligned), ("no", flat)):
                        crops[(k, al)].append(
                            finder.crops(p.frame, [det.int_box()], [det.eyes])[0])
            idx = np.array(idx, int)
            for k, (_, _, pred) in enumerate(finders):
                t_ok = tight_ok[k]
                for align in ("yes", "no"):
                    c = crops[(k, align)]
                    ok = predict(pred, np.stack(c)) == labels[idx] if len(idx) else np.zeros(0)
                    row = {"date": dt.date.today().isoformat(), "model": pred.path.name,
                           "detector": name, "max_angle": max_angle, "align": align,
                           "n": len(faces), "recall": round(len(idx) / len(faces), 4),
                           "acc_tight_all": round(float(t_ok.mean()), 4),
                           "acc_end_to_end": round(float(ok.sum() / len(faces)), 4),
                           "acc_detected": round(float(ok.mean()), 4) if len(idx) else 0.0,
                           "acc_tight_same_faces": round(float(t_ok[idx].mean()), 4)
                           if len(idx) else 0.0}
                    row["delta_pp"] = round(100 * (row["acc_detected"]
                                                   - row["acc_tight_same_faces"]), 2)
                    print(row)
                    rows.append(row)
    atomic_write_csv(args.out, rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
