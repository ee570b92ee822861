"""Run folders: where a run lives, new or resumed. Light tier (no TensorFlow), so ``--resume``
and ``--name`` mistakes are reported before the training stack loads."""

from __future__ import annotations

from pathlib import Path

from fer_edge.config import TrainConfig, check_run_name
from fer_edge.errors import ConfigError


def resolve_run_dir(cfg: TrainConfig) -> Path:
    """The run folder: ``--name`` (must be new unless resuming) or a fresh numbered default."""
    check_run_name(cfg.name)
    runs = Path(cfg.runs_dir)
    if cfg.resume:
        if cfg.name:
            run = runs / cfg.name
            if not (run / "config.json").is_file():
                raise ConfigError(f"{run}: no run to resume there (no config.json)")
            return run
        cands = sorted((p for p in runs.glob("*/config.json")), key=lambda p: p.stat().st_mtime)
        if not cands:
            raise ConfigError(f"{runs}: no run to resume; start one without --resume")
        return cands[-1].parent
    if cfg.name:
        run = runs / cfg.name
        if run.exists() and not run.is_dir():
            raise ConfigError(f"{run}: is a file; choose another --name")
        if run.exists() and any(run.iterdir()):
            raise ConfigError(f"{run}: run folder exists; pass --resume to continue it or choose "
                              "another --name")
        return run
    base = f"{cfg.arch}_{cfg.input_size}"
    run, k = runs / base, 2
    while run.exists():
        run, k = runs / f"{base}_{k}", k + 1
    return run
