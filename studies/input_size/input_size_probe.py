"""Score one float model's weights at other input sizes, without retraining (issue 13 study).

    python convert/recover_float.py fer_edge/assets/fer_default_int8.tflite rec \\
        --data ../shared/data/fer2013.npz
    python studies/input_size/input_size_probe.py rec --sizes 75,83,91,99,107 \\
        --data ../shared/data/fer2013.npz

The question: would a larger model input (more spatial resolution in InceptionV3's last
blocks, which are 1x1 at 75x75) be a cheap gain for the default model? The run folder's
``model_float.h5`` weights are loaded into the same architecture built at each size
(:func:`fer_edge.train.model.build_model`; every weight is size-independent after global
pooling), and the FER-2013 validation split (PublicTest) is scored with the one
preprocessing path (48x48 grey -> bilinear resize to the size -> [-1, 1], repeated to RGB) and
flip TTA as the spec says. PrivateTest plays no part. Heavy tier (TensorFlow).

Adds one row per size to the rows already in ``studies/input_size/results/input_size_probe.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "input_size_probe.csv"
DATA = HERE.parents[2] / "shared" / "data" / "fer2013.npz"  # beside the clone


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="folder with model_float.h5 and spec.json")
    ap.add_argument("--sizes", default="75,83,91,99,107", help="input sides, comma separated")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    for need in (args.run / "model_float.h5", args.run / "spec.json", args.data):
        if not need.is_file():
            sys.exit(f"input_size_probe: {need} not found; pass a run folder "
                     "(fer-edge train or convert/recover_float.py) and --data fer2013.npz")
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        sys.exit(f"input_size_probe: --sizes {args.sizes!r} is not a list of integers")
    if min(sizes) < 75:
        sys.exit("input_size_probe: InceptionV3 needs an input of at least 75 pixels")

    from fer_edge.data import load_dataset
    from fer_edge.errors import FerEdgeError
    from fer_edge.io import atomic_write_csv
    from fer_edge.metrics import classification_report
    from fer_edge.spec import ModelSpec
    from fer_edge.train.model import build_model
    from fer_edge.train.pipeline import predict_probs

    try:
        spec0 = ModelSpec.read(args.run / "spec.json")
        ds = load_dataset(args.data)
    except FerEdgeError as exc:
        sys.exit(f"input_size_probe: {exc}")
    x, y = ds.images["val"], ds.labels["val"]
    rows = []
    if args.out.is_file():  # earlier rows are kept
        with args.out.open(newline="") as f:
            rows = list(csv.DictReader(f))
    for size in sizes:
        spec = spec0.replace(input_size=size)
        model = build_model(spec, "none")
        model.load_weights(str(args.run / "model_float.h5"))
        t = time.perf_counter()
        rep = classification_report(y, predict_probs(model, x, spec, tta_flip=spec.tta_flip)
                                    .argmax(1), spec.labels)
        row = {"date": dt.date.today().isoformat(), "run": args.run.name,
               "weights_from": spec0.extra.get("recovered_from", args.run.name),
               "trained_at": spec0.input_size, "input_size": size, "split": "val",
               "tta_flip": spec.tta_flip, "accuracy": round(100 * rep["accuracy"], 2),
               "macro_f1": round(100 * rep["macro_f1"], 2),
               **{f"recall_{c['label'].lower()}": round(100 * c["recall"], 1)
                  for c in rep["per_class"]}}
        print(f"{size}x{size}: accuracy {row['accuracy']} %, macro-F1 {row['macro_f1']} % "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        rows.append(row)
    atomic_write_csv(args.out, rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
