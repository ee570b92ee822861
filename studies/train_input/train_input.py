"""Is the training input pipeline ever the bottleneck? (issue: within 15 % of the bare step)

Measures, in one process on the same machine:

1. bare: the model's train step on in-memory tensors (no tf.data, no augmentation);
2. pipeline: ``model.fit`` fed by :func:`fer_edge.train.pipeline.make_dataset` with the
   default augmentation, on real FER-2013 faces when ``--data`` is given (else synthetic);
3. pipeline alone: how fast the tf.data pipeline produces batches with no model attached.

and appends one row per measurement to ``studies/train_input/results/train_input.csv``.

    python studies/train_input/train_input.py --data ../shared/data/fer2013.npz --steps 40
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


from fer_edge.bench.machine import cpu_name  # noqa: E402
from fer_edge.data import load_dataset  # noqa: E402
from fer_edge.errors import FerEdgeError  # noqa: E402
from fer_edge.spec import ModelSpec  # noqa: E402
from fer_edge.train._keras import keras, tf  # noqa: E402
from fer_edge.train.model import build_model  # noqa: E402
from fer_edge.train.pipeline import Augment, make_dataset  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "train_input.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic", help="dataset (npz/csv/folder) or synthetic")
    ap.add_argument("--arch", default="inception_v3")
    ap.add_argument("--input-size", type=int, default=75)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()

    keras.utils.set_random_seed(0)
    spec = ModelSpec(input_size=args.input_size, arch=args.arch)
    try:
        ds = load_dataset(args.data)
    except FerEdgeError as exc:
        sys.exit(f"train_input: {exc}")
    x, y = ds.images["train"], ds.labels["train"]
    model = build_model(spec, "none")
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.02),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    b = args.batch_size

    # 1. bare train step on in-memory tensors
    from fer_edge.preprocess import to_model_input

    xb = tf.constant(to_model_input(x[:b], spec))
    yb = tf.one_hot(tf.constant(y[:b], tf.int32), spec.num_classes)
    for _ in range(args.warmup):
        model.train_on_batch(xb, yb)
    t = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(xb, yb)
    bare = args.steps * b / (time.perf_counter() - t)

    # 2. fit through the real pipeline (augmentation on); steady state = batches after warm-up
    train = make_dataset(x, y, spec, b, training=True, aug=Augment(), seed=0).repeat()
    stamps: list[float] = []
    clock = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: stamps.append(time.perf_counter()))
    model.fit(train, steps_per_epoch=args.warmup + args.steps, epochs=1, verbose=0,
              callbacks=[clock])
    piped = args.steps * b / (stamps[-1] - stamps[args.warmup - 1])

    # 3. the pipeline alone
    it = iter(train)
    for _ in range(args.warmup):
        next(it)
    t = time.perf_counter()
    n = args.steps * 4
    for _ in range(n):
        next(it)
    alone = n * b / (time.perf_counter() - t)

    ratio = piped / bare
    print(f"bare train step   {bare:8.1f} img/s")
    print(f"fit with pipeline {piped:8.1f} img/s  ({ratio:.1%} of bare; target >= 85 %)")
    print(f"pipeline alone    {alone:8.1f} img/s  ({alone / bare:.1f}x the model's need)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.is_file()
    with RESULTS.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "cpu", "cores", "tensorflow", "arch", "input", "batch", "steps",
                        "data", "bare_img_s", "fit_pipeline_img_s", "pipeline_only_img_s",
                        "fit_over_bare"])
        w.writerow([dt.datetime.now().isoformat(timespec="seconds"), cpu_name(), os.cpu_count(),
                    tf.__version__, args.arch, args.input_size, b, args.steps,
                    Path(args.data).name, round(bare, 1), round(piped, 1), round(alone, 1),
                    round(ratio, 3)])


if __name__ == "__main__":
    main()
