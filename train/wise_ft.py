"""Weight-space interpolation of a model and its fine-tune (WiSE-FT, Wortsman et al. 2022).

A fine-tune started from a trained model usually stays in the same loss basin, so the
straight line between the two weight sets holds models that keep much of the start's accuracy
on its own data and much of the fine-tune's gain on the new labels. This script writes the
models on that line and scores each on the *validation* split (FER-2013 PublicTest) with both
label sources, so the mixing weight is chosen without looking at PrivateTest:

    python train/wise_ft.py START FINETUNE OUT --alphas 0.3,0.5,0.7 \\
        --data ../shared/data/fer2013.npz --ferplus ../shared/data/ferplus/fer2013new.csv

``START`` and ``FINETUNE`` are fer-edge run folders (or folders with ``model_float.h5`` +
``spec.json``, e.g. from ``convert/recover_float.py``) of the same architecture, input size
and labels; ``FINETUNE`` must have been trained from ``START`` (``--init``); its weights are
those after its last epoch (``--finetune-end last``, from its resume checkpoint) or of its
best validation epoch (``best``, its ``model_float.h5``). For each alpha,
``OUT/alpha_<a>/`` gets ``model_float.h5`` = (1 - a) * START + a * FINETUNE (every weight,
BatchNorm statistics included) and ``spec.json`` (FINETUNE's, its ``extra`` naming both
ends), ready for ``fer-edge convert OUT/alpha_<a> --int8``. ``OUT/val_scores.csv`` has one
row per alpha (0 and 1 included): PublicTest accuracy and macro-F1 with FER-2013 labels and
with FER+ majority labels, float model, flip TTA as the spec says. Heavy tier (TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _model_dir(p: str) -> Path:
    d = Path(p)
    if not (d / "model_float.h5").is_file() or not (d / "spec.json").is_file():
        raise SystemExit(f"wise_ft: {d} has no model_float.h5 + spec.json; pass a fer-edge run "
                         "folder (or a convert/recover_float.py output)")
    return d


def interpolate(a_weights: list[np.ndarray], b_weights: list[np.ndarray],
                alpha: float) -> list[np.ndarray]:
    """(1 - alpha) * a + alpha * b, weight by weight.

    Args:
        a_weights, b_weights: ``model.get_weights()`` of two models of one architecture
            (same order, shapes and dtypes).
        alpha: in [0, 1]; 0 gives ``a``, 1 gives ``b``.

    Returns:
        The mixed weights, each in its input dtype.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha} must be in [0, 1]")
    if len(a_weights) != len(b_weights):
        raise ValueError(f"the models differ: {len(a_weights)} vs {len(b_weights)} weights")
    out = []
    for i, (wa, wb) in enumerate(zip(a_weights, b_weights)):
        if wa.shape != wb.shape:
            raise ValueError(f"the models differ at weight {i}: {wa.shape} vs {wb.shape}")
        out.append(((1.0 - alpha) * wa.astype(np.float64)
                    + alpha * wb.astype(np.float64)).astype(wa.dtype))
    return out


def last_epoch_weights(run: Path, model) -> list[np.ndarray]:
    """The weights a run ended with: its last stage's resume checkpoint (``ckpt/<stage>/``).

    ``model_float.h5`` holds the epoch with the best validation accuracy, which for a short
    fine-tune can be its first epoch; WiSE-FT's end point is the end of the schedule.

    Args:
        run: a ``fer-edge train`` run folder (``config.json`` + ``ckpt/``).
        model: the run's model (e.g. its ``model_float.h5`` loaded); its weights are replaced.

    Returns:
        ``model.get_weights()`` after the last epoch: the weight EMA's average when the run
        kept one (``ema`` in its config), else the raw weights.
    """
    from fer_edge.train._keras import tf
    from fer_edge.train.ema import WeightEMA

    latest = None
    for stage in ("finetune", "head"):
        latest = tf.train.latest_checkpoint(str(run / "ckpt" / stage))
        if latest:
            break
    if not latest:
        raise SystemExit(f"wise_ft: {run} has no ckpt/finetune or ckpt/head checkpoint; pass "
                         "a fer-edge run folder or use --finetune-end best")
    cfg = json.loads((run / "config.json").read_text()).get("config", {})
    ema = WeightEMA(model, float(cfg["ema"])) if float(cfg.get("ema") or 0) > 0 else None
    ckpt = tf.train.Checkpoint(model=model, **({"ema": ema} if ema is not None else {}))
    status = ckpt.restore(latest)
    status.assert_existing_objects_matched()
    status.expect_partial()
    if ema is None:
        return model.get_weights()
    with ema.averaged():
        return model.get_weights()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("start", help="the model the fine-tune started from")
    p.add_argument("finetune", help="the fine-tuned model (trained with --init START)")
    p.add_argument("out", help="new folder for alpha_<a>/ model folders and val_scores.csv")
    p.add_argument("--alphas", default="0.3,0.5,0.7", help="mixing weights of FINETUNE")
    p.add_argument("--data", required=True, help="fer2013.npz (scored on its PublicTest)")
    p.add_argument("--ferplus", default="", help="fer2013new.csv: also score FER+ majority")
    p.add_argument("--finetune-end", choices=("last", "best"), default="last",
                   help="FINETUNE's weights after its last epoch (its resume checkpoint, EMA "
                   "average if it kept one) or its model_float.h5 (best validation epoch)")
    a = p.parse_args(argv)

    start, fine = _model_dir(a.start), _model_dir(a.finetune)
    out = Path(a.out)
    if out.exists():
        raise SystemExit(f"wise_ft: {out} exists; pass a new folder (nothing is overwritten)")
    try:
        alphas = sorted({float(x) for x in a.alphas.split(",") if x.strip()})
    except ValueError:
        alphas = []
    if not alphas or not all(0.0 <= x <= 1.0 for x in alphas):
        raise SystemExit(f"wise_ft: --alphas {a.alphas!r}: give numbers in [0, 1], e.g. 0.3,0.5")

    from fer_edge.data import load_dataset
    from fer_edge.data.ferplus import apply_labels
    from fer_edge.io import atomic_write_csv
    from fer_edge.metrics import classification_report
    from fer_edge.spec import ModelSpec
    from fer_edge.train.fit import save_model_atomic
    from fer_edge.train.pipeline import predict_probs
    from fer_edge.train.report import load_float_model

    s_a, s_b = ModelSpec.read(start / "spec.json"), ModelSpec.read(fine / "spec.json")
    for key in ("arch", "input_size", "labels"):
        if getattr(s_a, key) != getattr(s_b, key):
            raise SystemExit(f"wise_ft: the two models differ in {key} ({getattr(s_a, key)} vs "
                             f"{getattr(s_b, key)}); both ends must be one architecture")
    m_a, m_b = load_float_model(start / "model_float.h5"), load_float_model(fine / "model_float.h5")
    w_a = m_a.get_weights()
    w_b = last_epoch_weights(fine, m_b) if a.finetune_end == "last" else m_b.get_weights()

    # one prediction per face and mix: the FER+ faces are the FER-2013 val faces FER+ keeps
    ds = load_dataset(a.data)
    x, rows_val = ds.images["val"], ds.rows["val"]
    sets = {"fer2013": (np.ones(len(x), bool), ds.labels["val"])}
    if a.ferplus:
        apply_labels(ds, "ferplus-majority", a.ferplus)  # replaces the arrays, keeps x
        sets["ferplus"] = (np.isin(rows_val, ds.rows["val"]), ds.labels["val"])

    out.mkdir(parents=True)
    rows = []
    for alpha in sorted({0.0, 1.0, *alphas}):
        m_b.set_weights(interpolate(w_a, w_b, alpha))
        row = {"alpha": alpha}
        pred = predict_probs(m_b, x, s_b, tta_flip=s_b.tta_flip).argmax(1)
        for name, (keep, y) in sets.items():
            rep = classification_report(y, pred[keep], s_b.labels)
            row[f"{name}_val_acc"] = round(rep["accuracy"], 4)
            row[f"{name}_val_macro_f1"] = round(rep["macro_f1"], 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if alpha in alphas:
            d = out / f"alpha_{alpha:g}"
            d.mkdir()
            save_model_atomic(m_b, d / "model_float.h5")
            spec = s_b.replace(extra={**s_b.extra, "wise_ft": {
                "start": str(start.resolve()), "finetune": str(fine.resolve()),
                "finetune_end": a.finetune_end, "alpha": alpha}})
            spec.write(d / "spec.json")
    atomic_write_csv(out / "val_scores.csv", rows)
    print(f"wrote {out}/val_scores.csv and alpha_*/ model folders")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
