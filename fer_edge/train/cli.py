"""``fer-edge train`` arguments. Light tier: TensorFlow is imported only in :func:`run`."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from fer_edge.config import add_config_parser, config_from_args, given_values, make_config
from fer_edge.errors import ConfigError, require_training_stack
from fer_edge.train.config import RUN_IDENTITY, TrainConfig
from fer_edge.train.data import check_training_faces, read_training_data
from fer_edge.train.runs import init_source, lock_run, resolve_run_dir

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(
        sub, "train", TrainConfig, help="train the InceptionV3 classifier on FER-2013",
        description="Stage 1 trains a new head on a frozen base (transfer learning); stage 2 "
                    "unfreezes the top Inception blocks (fine-tuning). Writes one run folder "
                    "with the best float model, spec, history, TensorBoard logs and a test report.")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(TrainConfig, args)
    worker = _worker(cfg)
    if cfg.resume and not (worker and not (Path(cfg.runs_dir) / cfg.name / "config.json")
                           .is_file()):
        cfg = _resumed_config(cfg, args)
    elif cfg.resume:
        # a worker on another host has no run folder: it trains with the settings it was
        # given (the chief's) and receives the chief's checkpoint when training starts
        log.info("%s: no local copy of run %r; resuming with the given settings", worker,
                 cfg.name)
    cfg.validate()  # the recipe is checked first, on a light install too
    if not worker:  # a worker never writes the run folder (the chief makes it)
        run_dir = resolve_run_dir(cfg)  # a taken --name, a file in the way: before TensorFlow
        if cfg.resume:
            lock_run(run_dir)  # the run is not training in another process
    if cfg.init:
        init_source(cfg.init)  # not a fer-edge model: said before the data is read
    dataset = read_training_data(cfg)  # a bad --data is said now, not after TensorFlow loads
    check_training_faces(cfg, dataset)
    require_training_stack("train")
    log.info("loading TensorFlow...")
    from fer_edge.train.fit import run_training

    run_dir = run_training(cfg, dataset)
    if run_dir.is_dir():
        print(f"run folder: {run_dir}")
    else:
        print("training done; the chief wrote the run folder")
    return 0


def _worker(cfg: TrainConfig) -> str:
    """This task's name ("worker 1") in a multi-worker cluster when it is not the chief."""
    if cfg.distribute not in ("auto", "multiworker") or not os.environ.get("TF_CONFIG", ""):
        return ""
    from fer_edge.train.cluster import parse_tf_config

    cluster = parse_tf_config(os.environ["TF_CONFIG"])
    return "" if cluster.is_chief or cluster.num_workers < 2 else cluster.name


def _same(key: str, saved, given) -> bool:
    if key == "data" and saved and given and os.path.exists(saved) and os.path.exists(given):
        return os.path.samefile(saved, given)
    if key == "weights" and saved not in ("imagenet", "none") and os.path.exists(str(saved)) \
            and os.path.exists(str(given)):
        return os.path.samefile(saved, given)
    return saved == given


def _resumed_config(cfg: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """A resumed run keeps its saved config; settings given now (flags, or a --config recipe)
    override it, except those that make the run what it is (:data:`RUN_IDENTITY`: data,
    architecture, input size, labels, ...), which must match."""
    run = resolve_run_dir(cfg)
    try:
        saved = json.loads((Path(run) / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{run}/config.json: unreadable ({exc}); this run cannot be "
                          "resumed") from None
    given, origin = given_values(TrainConfig, args)
    changed = [f"{origin.get(k, k)} {given[k]!r} (the run has {saved.get(k)!r})"
               for k in RUN_IDENTITY if k in given and k in saved
               and not _same(k, saved[k], given[k])]
    if changed:
        raise ConfigError(f"--resume {run.name}: cannot change what the run is: "
                          f"{'; '.join(changed)}; drop the flag, or start a new run with "
                          "another --name")
    _note_saved_keys(run, saved, given)
    known = {k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__}
    known.update(given)
    known.update(resume=True, name=run.name, runs_dir=str(run.parent))
    return make_config(TrainConfig, known, origin)


def _note_saved_keys(run: Path, saved: dict, given: dict) -> None:
    """Say which keys of a resumed run's ``config.json`` this version does not know (ignored)
    and which it lacks (the defaults apply): a run saved by another version resumes, but not
    silently."""
    fields = TrainConfig.__dataclass_fields__
    unknown = sorted(k for k in saved if k not in fields)
    missing = sorted(k for k in fields if k not in saved and k not in given
                     and k not in ("resume", "name", "runs_dir"))
    if unknown:
        log.warning("note: %s/config.json has setting(s) this version does not know, ignored: "
                    "%s", run, ", ".join(unknown))
    if missing:
        log.warning("note: %s/config.json lacks setting(s), so their defaults apply: %s (pass "
                    "the flag to choose another value)", run, ", ".join(missing))
