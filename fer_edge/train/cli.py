"""``fer-edge train`` arguments. Light tier: TensorFlow is imported only in :func:`run`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from fer_edge.config import TrainConfig, add_config_parser, config_from_args

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(
        sub, "train", TrainConfig, help="train the InceptionV3 classifier on FER-2013",
        description="Stage 1 trains a new head on a frozen base (transfer learning); stage 2 "
                    "unfreezes the top Inception blocks (fine-tuning). Writes one run folder "
                    "with the best float model, spec, history, TensorBoard logs and a test report.")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(TrainConfig, args)
    if cfg.resume:
        cfg = _resumed_config(cfg, args)
    from fer_edge.train.fit import run_training

    run_dir = run_training(cfg)
    print(f"run folder: {run_dir}")
    return 0


def _resumed_config(cfg: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """A resumed run keeps its saved config; flags given now (e.g. more epochs) override it."""
    from fer_edge.train.fit import resolve_run_dir

    run = resolve_run_dir(cfg)
    saved = json.loads((Path(run) / "config.json").read_text())["config"]
    explicit = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                if getattr(args, f.name, None) is not None}
    saved.update(explicit)
    saved.update(resume=True, name=run.name, runs_dir=str(run.parent))
    return TrainConfig(**saved)
