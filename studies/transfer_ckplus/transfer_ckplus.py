"""Does a FER-2013 model generalise to a new dataset, and what does fine-tuning add? (CK+48)

The seed's first two questions, literally: a FER-2013-trained fer-edge model is the base,
CK+48 (one folder per expression, file names ``S<subject>_<seq>_<frame>.png``) the new
dataset, in subject-wise k-fold (no subject in two splits; validation carved from the
training subjects). Per fold:

- ``zero_shot``: the base model as it is, CK+ classes mapped to FER-2013's (anger->angry,
  sadness->sad, ...); classes without a FER-2013 counterpart (contempt) are left out, a
  face predicted as a FER class no CK+ class maps to (neutral) counts as wrong.
- ``transfer``: ``fer-edge train --init BASE`` with the base frozen and a new head
  (``--head-epochs``, no fine-tuning).
- ``finetune``: the same, then the top ``--unfreeze-blocks`` blocks fine-tuned.
- ``scratch``: the same architecture and input size trained on CK+48 alone from random init.

Each trained condition goes through the product's ``run_training`` (the fold's faces passed
in memory) and is scored by the run's own test report. Rows per fold and condition go to
``studies/transfer_ckplus/results/transfer_ckplus_<tag>.csv``; the summary (mean ± std over
folds) to stdout and ``--table``.

    python studies/transfer_ckplus/transfer_ckplus.py --base runs/train/cpu75x \\
        --data ../shared/data/ckplus48 --folds 5 --work /work/fer-runs/transfer --tag cpu75x
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: CK+ folder name -> FER-2013 class (the dataset README's table)
CK_TO_FER = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
             "sadness": "sad", "surprise": "surprise"}
CONDITIONS = ("zero_shot", "transfer", "finetune", "scratch")


def subject_of(path: Path) -> str:
    m = re.match(r"(S\d+)_", path.name)
    if not m:
        raise SystemExit(f"{path}: file name does not start with S<subject>_ (CK+ layout)")
    return m.group(1)


def subject_folds(subjects: list[str], k: int, seed: int) -> dict[str, int]:
    """Subject -> fold id, subjects shuffled with ``seed`` and dealt round-robin."""
    uniq = sorted(set(subjects))
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    return {s: i % k for i, s in enumerate(uniq)}


def fold_dataset(x, y, names, subjects, folds, fold: int, seed: int):
    """The fold's Dataset: test = its subjects; val = 1/8 of the other subjects (seeded), the
    rest train (a whole fold as val would leave 3-fold training with a third of the data)."""
    from fer_edge.data import Dataset

    subj = np.array(subjects)
    fold_of = np.array([folds[s] for s in subjects])
    test = fold_of == fold
    k = max(folds.values()) + 1
    rest = sorted(set(subj[~test]))
    pick = set(np.random.default_rng(seed + fold).choice(rest, max(1, len(rest) // 8),
                                                        replace=False))
    val = np.isin(subj, list(pick)) & ~test
    train = ~test & ~val
    return Dataset({"train": x[train], "val": x[val], "test": x[test]},
                   {"train": y[train], "val": y[val], "test": y[test]},
                   "ckplus48", notes=[f"subject-wise fold {fold + 1}/{k}"],
                   class_names=tuple(names))


def export_fold(files, subjects, folds, fold: int, out: Path) -> None:
    """Write one fold as the Kaggle-style folder layout ``fer-edge train --data`` reads:
    ``out/train/<class>/`` (every other subject) and ``out/test/<class>/`` (the fold's
    subjects), as symlinks to the CK+48 files; ``out`` must not exist yet."""
    if out.exists():
        raise SystemExit(f"transfer_ckplus: {out} exists; pass a new --export-dir")
    for f, s in zip(files, subjects):
        split = "test" if folds[s] == fold else "train"
        dst = out / split / f.parent.name / f.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(Path(f).resolve())


def zero_shot(base: Path, ds, names) -> dict:
    """Base model on the fold's test faces, CK+ classes mapped to FER-2013's."""
    from fer_edge.spec import ModelSpec
    from fer_edge.train.pipeline import predict_probs
    from fer_edge.train.report import load_float_model

    spec = ModelSpec.read(base / "spec.json")
    model = load_float_model(base / "model_float.h5")
    keep = [c for c, n in enumerate(names) if CK_TO_FER.get(n) in spec.labels]
    x, y = ds.images["test"], ds.labels["test"]
    m = np.isin(y, keep)
    p = predict_probs(model, x[m], spec, tta_flip=spec.tta_flip).argmax(1)
    fer_to_ck = {spec.labels.index(CK_TO_FER[names[c]]): c for c in keep}
    pred = np.array([fer_to_ck.get(int(v), -1) for v in p])
    y = y[m]
    out = {"accuracy": float(np.mean(pred == y)), "n": int(len(y))}
    for c, n in enumerate(names):
        out[f"recall_{n}"] = float(np.mean(pred[y == c] == c)) if c in keep and (
            y == c).any() else float("nan")
    return out


def trained(cond: str, base: Path, ds, fold: int, a, work: Path) -> dict:
    from fer_edge.spec import ModelSpec
    from fer_edge.train.config import TrainConfig
    from fer_edge.train.fit import run_training

    name = f"fold{fold + 1}_{cond}"
    run = work / "runs" / name
    if not (run / "eval" / "test_report.json").is_file():
        common = dict(data=str(a.data), runs_dir=str(work / "runs"), name=name, seed=a.seed,
                      batch_size=a.batch_size, tensorboard=False, threads=a.threads,
                      warmup_epochs=a.warmup_epochs, patience=a.patience)
        if cond == "scratch":
            spec = ModelSpec.read(base / "spec.json")
            cfg = TrainConfig(**common, arch=spec.arch, input_size=spec.input_size,
                              weights="none", finetune_epochs=a.scratch_epochs,
                              finetune_lr=a.scratch_lr, bn_momentum=0.9)
        else:
            cfg = TrainConfig(**common, init=str(base), head_epochs=a.head_epochs,
                              head_lr=a.head_lr,
                              finetune_epochs=a.finetune_epochs if cond == "finetune" else 0,
                              finetune_lr=a.finetune_lr, unfreeze_blocks=a.unfreeze_blocks)
        run_training(cfg, dataset=ds)
        from fer_edge.train._keras import keras

        keras.backend.clear_session()
    models = json.loads((run / "eval" / "test_report.json").read_text())["models"]
    final = list(models.values())[-1]  # the run's last stage
    out = {"accuracy": final["accuracy"], "n": final["n"]}
    for n, pc in zip(ds.class_names, final["per_class"]):
        out[f"recall_{n}"] = pc["recall"]
    return out


def summarise(rows: list[dict], names) -> str:
    def ms(vals):
        v = np.array([x for x in vals if x == x], float)
        return f"{100 * v.mean():.1f} ± {100 * v.std(ddof=1) if len(v) > 1 else 0:.1f}" if len(
            v) else "-"

    lines = ["| condition | folds | accuracy | " + " | ".join(names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for cond in CONDITIONS:
        rs = [r for r in rows if r["condition"] == cond]
        if not rs:
            continue
        lines.append(f"| {cond} | {len(rs)} | {ms([r['accuracy'] for r in rs])} | " +
                     " | ".join(ms([r[f'recall_{n}'] for r in rs]) for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="", help="the FER-2013 fer-edge run folder")
    p.add_argument("--data", required=True, help="CK+48 folder (one folder per class)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--only-folds", default="", help="run just these folds, e.g. 1,2")
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--head-epochs", type=int, default=10)
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--finetune-lr", type=float, default=1e-4)
    p.add_argument("--unfreeze-blocks", type=int, default=2)
    p.add_argument("--scratch-epochs", type=int, default=30)
    p.add_argument("--scratch-lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default="", help="runs and logs (outside the repo)")
    p.add_argument("--tag", default="", help="names the results CSV")
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--table", default="")
    p.add_argument("--export-dir", default="", help="write fold --export-fold as train/ and "
                   "test/ class folders (symlinks) here for `fer-edge train --data`, and exit")
    p.add_argument("--export-fold", type=int, default=1)
    a = p.parse_args(argv)
    from fer_edge.cli import setup_logging
    from fer_edge.data.readers import read_class_folders
    from fer_edge.io import atomic_write_csv

    setup_logging(False)
    x, y, names, files = read_class_folders(a.data, own_classes=True)
    subjects = [subject_of(f) for f in files]
    folds = subject_folds(subjects, a.folds, a.seed)
    if a.export_dir:
        export_fold(files, subjects, folds, a.export_fold - 1, Path(a.export_dir))
        print(f"fold {a.export_fold}/{a.folds} written to {a.export_dir} (train/, test/)")
        return 0
    if not (a.base and a.work and a.tag):
        raise SystemExit("transfer_ckplus: --base RUN (the FER-2013 fer-edge run), --work DIR "
                         "and --tag NAME are needed for the study (--export-dir needs none)")
    base, work = Path(a.base), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    only = {int(v) - 1 for v in a.only_folds.split(",") if v.strip()} or set(range(a.folds))
    conds = [c.strip() for c in a.conditions.split(",") if c.strip()]
    rows = []
    for fold in sorted(only):
        ds = fold_dataset(x, y, names, subjects, folds, fold, a.seed)
        print(f"fold {fold + 1}/{a.folds}: {ds.summary()}", flush=True)
        for cond in conds:
            res = (zero_shot(base, ds, names) if cond == "zero_shot"
                   else trained(cond, base, ds, fold, a, work))
            rows.append({"fold": fold + 1, "condition": cond, **res,
                         "base": base.name, "folds": a.folds, "seed": a.seed})
            print(f"  {cond}: accuracy {res['accuracy']:.4f} (n={res['n']})", flush=True)
    out = Path(a.results) / f"transfer_ckplus_{a.tag}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out, rows)
    md = summarise(rows, names)
    if a.table:
        Path(a.table).write_text(md)
    print(md)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.exit(main())
