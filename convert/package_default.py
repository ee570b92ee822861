"""Package a converted build as fer-edge's default model (``fer_edge.load()`` and
``fer-edge demo`` without ``--model``), with a model card made from the run's own reports.

    python convert/package_default.py runs/train/cpu75            # its int8 TFLite build
    python convert/package_default.py runs/train/cpu75 --build fer_inception_v3_75_int8.tflite

Writes ``fer_edge/assets/fer_default_int8.tflite`` (the build byte for byte: its spec is
embedded) and ``fer_edge/assets/fer_default_int8.card.json``: source run, recipe, epochs and
minutes of training, and the parity report's figures for this build (split, n, accuracy,
macro-F1, per-class recall, float accuracy, agreement, size, sha256), and which default it
``replaces`` (sha256, run, date). Every number comes from
``<run>/export/report.json``, ``<run>/config.json`` and ``<run>/history.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "fer_edge" / "assets"
NAME = "fer_default_int8"


def replaced(card_path: Path, digest: str) -> dict:
    """Which default the new build replaces (sha256, run, date of the card at ``card_path``);
    packaging the same build again keeps the entry it had; {} when there was no card."""
    if not card_path.is_file():
        return {}
    old = json.loads(card_path.read_text())
    if old.get("sha256") == digest:
        return old.get("replaces", {})
    return {k: old.get(k, "") for k in ("sha256", "source_run", "packaged")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a train run folder that `fer-edge convert --int8` has exported")
    ap.add_argument("--build", default="", help="build file name in <run>/export (default: the "
                    "int8 TFLite)")
    ap.add_argument("--dest", default=str(ASSETS), help="folder to package into (default: the "
                    "package's assets)")
    ap.add_argument("--commands", nargs="*", default=[], help="the train/convert command lines "
                    "that made the build, recorded in the card")
    args = ap.parse_args()
    run, dest = Path(args.run), Path(args.dest)
    report_path = run / "export" / "report.json"
    if not report_path.is_file():
        sys.exit(f"package_default: {report_path} not found; run `fer-edge convert {run} --int8`")
    report = json.loads(report_path.read_text())
    parity = report["parity"]
    builds = parity["builds"]
    name = args.build or next((b for b in builds if b.endswith("_int8.tflite")), "")
    if name not in builds:
        sys.exit(f"package_default: no build {name or '*_int8.tflite'} in {report_path}; "
                 f"builds: {', '.join(builds)}")
    src = run / "export" / name
    b, facts = builds[name], report["builds"][name]
    if b.get("failures"):
        sys.exit(f"package_default: {name} failed the parity gate ({b['failures'][0]}); "
                 "only a build that passed it can be the default")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if digest != facts["sha256"]:
        sys.exit(f"package_default: {src} changed since its report was written; convert again")
    cfg = json.loads((run / "config.json").read_text())
    with (run / "history.csv").open(newline="") as f:
        hist = list(csv.DictReader(f))
    labels = parity["labels"]
    card = {
        "model": f"{NAME}.tflite", "source_run": run.name, "source_build": name,
        "packaged": dt.date.today().isoformat(), "sha256": digest,
        "size_mb": round(src.stat().st_size / 1e6, 2),
        "recipe": {k: cfg["config"][k] for k in (
            "arch", "weights", "input_size", "batch_size", "finetune_epochs", "finetune_lr",
            "label_smoothing", "imbalance", "augment", "tta_flip") if k in cfg["config"]},
        "trained_epochs": len(hist),
        "training_minutes": round(sum(float(r["seconds"]) for r in hist) / 60, 1),
        "evaluation": {
            "split": parity.get("split", "test"), "n": b["report"]["n"],
            "accuracy": b["report"]["accuracy"], "macro_f1": b["report"]["macro_f1"],
            "recall": {c["label"]: c["recall"] for c in b["report"]["per_class"]},
            "float_accuracy": parity["reference"]["accuracy"],
            "delta_pp_vs_float": b["delta_pp"], "agreement_with_float": b["agreement"],
            "gate": "pass",
        },
        "commands": args.commands,
        "labels": labels,
        "data": parity.get("data", ""),
    }
    previous = replaced(dest / f"{NAME}.card.json", digest)
    if previous:
        card["replaces"] = previous
    dest.mkdir(parents=True, exist_ok=True)
    card_text = json.dumps(card, indent=2) + "\n"
    for suffix, write in ((".tflite", lambda t: shutil.copyfile(src, t)),
                          (".card.json", lambda t: t.write_text(card_text))):
        tmp = dest / f".{NAME}{suffix}.tmp"
        write(tmp)
        tmp.replace(dest / f"{NAME}{suffix}")
    print(f"packaged {src} -> {dest / (NAME + '.tflite')} ({card['size_mb']} MB), "
          f"{card['evaluation']['split']} accuracy {100 * card['evaluation']['accuracy']:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
