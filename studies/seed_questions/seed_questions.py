"""Seed questions 1 and 2: transfer learning alone vs the fully trained network, per class.

ImageNet weights cannot be downloaded on the machines this project is built on, so "transfer
learning alone" is measured with what can be had: a softmax head trained on the features of a
frozen, randomly initialised InceptionV3 (``head_study.py --random-init``, strategy ``none``).
"After fine-tuning" is a fer-edge run that trained every layer (its ``eval/test_report.json``).
Both on FER-2013 PrivateTest. Writes ``studies/seed_questions/results/seed_q1_q2.csv``.

    python studies/seed_questions/head_study.py --random-init --data fer2013.npz --strategies none
    python studies/seed_questions/seed_questions.py --run runs/train/cpu75x
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _transfer_row(path: Path) -> dict:
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            if r["strategy"] == "none" and r["split"] == "test":
                return {"accuracy": float(r["accuracy"]), "macro_f1": float(r["macro_f1"]),
                        **{c: float(r[f"recall_{c}"]) for c in LABELS}}
    raise SystemExit(f"seed_questions: {path} has no strategy=none test row; run "
                     "head_study.py --random-init --strategies none first")


def _run_row(run: Path) -> tuple[dict, str]:
    rep_path = run / "eval" / "test_report.json"
    if not rep_path.is_file():
        raise SystemExit(f"seed_questions: {rep_path} not found; pass a finished train run")
    rep = json.loads(rep_path.read_text())
    m = rep["models"]["float"]
    recall = {c["label"]: c["recall"] for c in m["per_class"]}
    with (run / "history.csv").open(newline="") as f:
        hist = list(csv.DictReader(f))
    minutes = sum(float(h["seconds"]) for h in hist) / 60
    how = (f"run {run.name}: every layer trained from scratch, {len(hist)} epochs, "
           f"{minutes:.0f} min{', flip TTA' if rep.get('tta_flip') else ''}")
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], **recall}, how


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished fer-edge train run folder")
    ap.add_argument("--transfer", default=str(HERE / "results" / "head_study_random_init.csv"))
    ap.add_argument("--out", default=str(HERE / "results" / "seed_q1_q2.csv"))
    a = ap.parse_args()
    transfer = _transfer_row(Path(a.transfer))
    trained, how = _run_row(Path(a.run))
    cols = ["accuracy", "macro_f1", *LABELS]
    rows = [
        {"model": "transfer only: frozen random InceptionV3 + trained head (no ImageNet here)",
         **{c: f"{transfer[c]:.4f}" for c in cols}},
        {"model": how, **{c: f"{trained[c]:.4f}" for c in cols}},
        {"model": "gain from training the base (pp)",
         **{c: f"{100 * (trained[c] - transfer[c]):+.1f}" for c in cols}},
    ]
    out = Path(a.out)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, ["model", *cols])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")
    for r in rows:
        print(", ".join(f"{k}={v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
