"""How the QAT graph's range calibration moves the int8 TFLite's agreement with float.

For one trained run: the float model's per-face activation ranges on the calibration faces
``fer-edge convert`` uses (same seed, same pick) are computed once; then for each calibration
batch size the QAT graph's ranges are set (mean of per-batch min/max), the graph is converted
to the full-int8 TFLite exactly as ``fer-edge convert`` does, and the build is run through
LiteRT (flip TTA, as the spec says) on the validation and test splits against the float Keras
model. Choose on validation; test is reported, not used to choose.

    python studies/calibration_batch/calib_study.py runs/train/cpu75x \
        --data ../shared/data/fer2013.npz \
        --batch-sizes 1 2 4 8 16 --faces 3000

Writes ``studies/calibration_batch/results/calib_study_<run>.csv`` (one row per batch size
and split).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

from fer_edge.convert import export  # noqa: E402
from fer_edge.convert.qat import (  # noqa: E402
    build_qat_model,
    calibrate_ranges,
    face_ranges,
)
from fer_edge.data import load_dataset  # noqa: E402
from fer_edge.io import atomic_write_csv  # noqa: E402
from fer_edge.metrics import classification_report  # noqa: E402
from fer_edge.preprocess import to_model_input  # noqa: E402
from fer_edge.runtime.litert import LiteRTPredictor  # noqa: E402
from fer_edge.spec import ModelSpec  # noqa: E402
from fer_edge.train._keras import keras  # noqa: E402
from fer_edge.train.pipeline import predict_probs  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a fer-edge train run folder")
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--faces", type=int, default=3000, help="calibration faces")
    ap.add_argument("--seed", type=int, default=0, help="fer-edge convert's --seed")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    run = Path(a.run)
    spec = ModelSpec.read(run / "spec.json")
    ds = load_dataset(a.data)
    float_model = keras.models.load_model(str(run / "model_float.h5"), compile=False)
    rng = np.random.default_rng(a.seed + 1)  # the pick fer-edge convert makes
    n = min(a.faces, len(ds.labels["train"]))
    pick = np.sort(rng.choice(len(ds.labels["train"]), n, replace=False))
    t0 = time.time()
    ranges = face_ranges(float_model, to_model_input(ds.images["train"][pick], spec))
    print(f"per-face ranges of {n} faces: {time.time() - t0:.0f} s", flush=True)
    splits = {s: (ds.images[s], ds.labels[s]) for s in ("val", "test")}
    ref = {s: predict_probs(float_model, x, spec, tta_flip=spec.tta_flip).argmax(1)
           for s, (x, _) in splits.items()}
    out = Path(a.out) if a.out else HERE / "results" / f"calib_study_{run.name}.csv"
    rows = []
    tmp = HERE / "_work" / "calib_study.tflite"
    tmp.parent.mkdir(exist_ok=True)
    qat = build_qat_model(float_model)
    for b in a.batch_sizes:
        t0 = time.time()
        calibrate_ranges(qat, float_model, None, b, ranges=ranges)
        data, s8 = export.tflite_int8(qat, spec)
        tmp.write_bytes(data)
        s8.write(tmp.with_name(tmp.name + ".spec.json"))
        pred = LiteRTPredictor(tmp, num_threads=os.cpu_count())
        for split, (x, y) in splits.items():
            p = np.concatenate([pred.predict(x[i:i + 256]) for i in range(0, len(x), 256)])
            rep = classification_report(y, p.argmax(1), spec.labels)
            agree = p.argmax(1) == ref[split]
            row = {"run": run.name, "faces": n, "batch_size": b, "split": split,
                   "n": len(y), "agreement": round(float(agree.mean()), 5),
                   "disagreements": int((~agree).sum()),
                   "accuracy": round(rep["accuracy"], 5),
                   "float_accuracy": round(float(np.mean(ref[split] == y)), 5)}
            row.update({f"recall_{c['label']}": round(c["recall"], 4)
                        for c in rep["per_class"]})
            rows.append(row)
            print(f"batch {b:3d} {split:5s} agreement {row['agreement']:.4f} "
                  f"({row['disagreements']} faces) acc {row['accuracy']:.4f} "
                  f"(float {row['float_accuracy']:.4f})", flush=True)
        print(f"  {time.time() - t0:.0f} s", flush=True)
        atomic_write_csv(out, rows)  # after every batch size: an interrupted study keeps its rows
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
