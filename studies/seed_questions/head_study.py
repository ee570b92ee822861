"""Class-imbalance strategies (and a frozen-feature baseline) compared on fixed features.

Full InceptionV3 trainings cost hours per strategy on a 2-core CPU, so this study decouples
representation from classifier (Kang et al., ICLR 2020): the penultimate (global-average-pooled)
features of one backbone are extracted once, then a fresh softmax head is trained on them with
each imbalance strategy, using fer-edge's own class weights / oversampling / losses. Test and
validation per-class recall, macro-F1 and accuracy go to ``studies/seed_questions/results/``.

    # imbalance strategies on the backbone of a trained run
    python studies/seed_questions/head_study.py --model runs/train/cpu75/model_float.h5 \
        --data fer2013.npz
    # seed question 1 without ImageNet weights: head on a frozen *random* InceptionV3
    python studies/seed_questions/head_study.py --random-init --data fer2013.npz --strategies none
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

from fer_edge.data import load_dataset  # noqa: E402
from fer_edge.data.balance import class_weights, oversample_indices  # noqa: E402
from fer_edge.io import atomic_write_csv  # noqa: E402
from fer_edge.metrics import classification_report  # noqa: E402
from fer_edge.spec import FER2013_LABELS, ModelSpec  # noqa: E402
from fer_edge.train._keras import keras, tf  # noqa: E402
from fer_edge.train.pipeline import make_dataset  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
STRATEGIES = {
    # name: (imbalance method, loss, label smoothing)
    "none": ("none", "ce", 0.0),
    "label_smoothing": ("none", "ce", 0.1),
    "inverse": ("inverse", "ce", 0.0),
    "sqrt_inverse": ("sqrt_inverse", "ce", 0.0),
    "effective": ("effective", "ce", 0.0),
    "oversample": ("oversample", "ce", 0.0),
    "focal": ("none", "focal", 0.0),
}


def extract(model_path: str | None, data: str, input_size: int, flip: bool) -> dict:
    """Penultimate features (N, 2048) float32 per split, cached by model file and data."""
    key = hashlib.sha256(f"{model_path}|{data}|{input_size}|{flip}".encode()).hexdigest()[:12]
    cache = WORK / f"features_{key}.npz"
    if cache.is_file():
        return dict(np.load(cache))
    ds = load_dataset(data)
    if model_path:
        full = keras.models.load_model(model_path, compile=False)
        spec_path = Path(model_path).with_name("spec.json")
        spec = (ModelSpec.read(spec_path) if spec_path.is_file()
                else ModelSpec(input_size=input_size))
    else:
        from fer_edge.train.model import build_model

        keras.utils.set_random_seed(0)
        spec = ModelSpec(input_size=input_size)
        full = build_model(spec, "none")
    feat = keras.Model(full.input, full.get_layer("avg_pool").output)
    fn = tf.function(lambda x: feat(x, training=False))
    out = {}
    for split in ("train", "val", "test"):
        x, y = ds.images[split], ds.labels[split]
        chunks = []
        for i, (xb, _) in enumerate(make_dataset(x, y, spec, 128, training=False)):
            f = fn(xb)
            if flip:
                f = (f + fn(tf.reverse(xb, axis=[2]))) / 2
            chunks.append(f.numpy())
            if i % 20 == 0:
                print(f"  features {split}: {min((i + 1) * 128, len(y))}/{len(y)}", flush=True)
        out[f"{split}_x"], out[f"{split}_y"] = np.concatenate(chunks), y
    WORK.mkdir(exist_ok=True)
    np.savez(cache, **out)
    return out


def standardize(feats: dict) -> dict:
    """Z-score every feature with the train split's mean/std (a linear probe's usual input;
    a frozen random InceptionV3 gives features of std ~1e-4 that a head cannot use raw)."""
    mu = feats["train_x"].mean(0)
    sd = feats["train_x"].std(0) + 1e-12
    return {k: (v - mu) / sd if k.endswith("_x") else v for k, v in feats.items()}


def train_head(feats: dict, strategy: str, epochs: int, seed: int) -> keras.Model:
    method, loss_name, smoothing = STRATEGIES[strategy]
    keras.utils.set_random_seed(seed)
    x, y = feats["train_x"], feats["train_y"].astype(np.int64)
    counts = np.bincount(y, minlength=len(FER2013_LABELS))
    if method == "oversample":
        idx = oversample_indices(y, seed)
        x, y = x[idx], y[idx]
    w = class_weights(counts, method)[y].astype(np.float32)
    head = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dropout(0.3),
                             keras.layers.Dense(len(FER2013_LABELS), activation="softmax")])
    loss = (keras.losses.CategoricalFocalCrossentropy(gamma=2.0) if loss_name == "focal"
            else keras.losses.CategoricalCrossentropy(label_smoothing=smoothing))
    head.compile(keras.optimizers.Adam(1e-3), loss=loss)
    yh = keras.utils.to_categorical(y, len(FER2013_LABELS))
    head.fit(x, yh, sample_weight=w, batch_size=256, epochs=epochs, verbose=0, shuffle=True)
    return head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="float .h5 of a fer-edge run (its spec.json beside it)")
    ap.add_argument("--random-init", action="store_true", help="frozen random InceptionV3")
    ap.add_argument("--data", required=True)
    ap.add_argument("--input-size", type=int, default=75)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-flip", action="store_true", help="no flip-averaged features")
    ap.add_argument("--tag", default="", help="name of this study in the results")
    args = ap.parse_args()
    if not args.model and not args.random_init:
        ap.error("pass --model PATH or --random-init")
    feats = standardize(extract(args.model, args.data, args.input_size, not args.no_flip))
    tag = args.tag or ("random_init" if args.random_init else Path(args.model).parent.name)
    rows = []
    for strategy in args.strategies.split(","):
        head = train_head(feats, strategy, args.epochs, args.seed)
        for split in ("val", "test"):
            pred = head.predict(feats[f"{split}_x"], verbose=0).argmax(1)
            rep = classification_report(feats[f"{split}_y"], pred, FER2013_LABELS)
            row = {"study": tag, "strategy": strategy, "split": split,
                   "accuracy": round(rep["accuracy"], 4), "macro_f1": round(rep["macro_f1"], 4)}
            row.update({f"recall_{p['label']}": round(p["recall"], 4) for p in rep["per_class"]})
            rows.append(row)
            if split == "test":
                print(f"{strategy:16s} test acc {rep['accuracy']:.4f} macro-F1 "
                      f"{rep['macro_f1']:.4f} disgust recall {rep['per_class'][1]['recall']:.3f}")
    out = HERE / "results" / f"head_study_{tag}.csv"
    atomic_write_csv(out, rows)
    meta = {"date": dt.date.today().isoformat(), "model": args.model, "data": Path(args.data).name,
            "epochs": args.epochs, "seed": args.seed, "flip_features": not args.no_flip}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
