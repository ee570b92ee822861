"""Run folders: where a run lives, new or resumed. Light tier (no TensorFlow), so ``--resume``
and ``--name`` mistakes are reported before the training stack loads."""

from __future__ import annotations

import os
from pathlib import Path

from fer_edge.errors import ConfigError, ModelFileError, SpecError
from fer_edge.spec import ModelSpec
from fer_edge.train.config import TrainConfig, check_run_name


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


#: run folders this process holds the lock of: resolved path -> open descriptor
_LOCKS: dict[str, int] = {}


def lock_run(run: Path) -> None:
    """Hold an exclusive lock on the run folder for the rest of this process, so a second
    ``fer-edge train`` (``--resume`` while the run is still training) is refused before it
    rewrites anything. The lock is ``flock`` on the folder itself (no file is made in it); the
    system releases it when the process exits or crashes. Taking it again in the same process
    is a no-op. Where ``flock`` is unavailable (not POSIX) nothing is locked.

    Raises:
        ConfigError: another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks on folders
        return
    key = str(Path(run).resolve())
    if key in _LOCKS:
        return
    fd = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"{run}: another `fer-edge train` is training this run right now; "
                          "wait for it to end (or stop it), then --resume") from None
    _LOCKS[key] = fd


def unlock_run(run: Path) -> None:
    """Release :func:`lock_run`'s lock (a run removed, or a test that trains twice)."""
    fd = _LOCKS.pop(str(Path(run).resolve()), None)
    if fd is not None:
        os.close(fd)


def init_source(init: str) -> tuple[Path, ModelSpec]:
    """(model .h5, its spec) of ``--init``: a run folder or a model file with spec.json beside.

    Raises:
        ModelFileError: not a fer-edge run or model.
    """
    p = Path(init)
    model = p / "model_float.h5" if p.is_dir() else p
    spec_path = model.with_name("spec.json")
    if not model.is_file() or model.suffix.lower() not in (".h5", ".keras"):
        raise ModelFileError(f"--init {init}: not a fer-edge run or model (expected a run "
                             "folder with model_float.h5, or a model_float.h5 with its "
                             "spec.json beside it)")
    if not spec_path.is_file():
        raise ModelFileError(f"--init {init}: no spec.json beside {model.name}; is it a "
                             "fer-edge model? (a run folder has both)")
    try:
        spec = ModelSpec.read(spec_path)
    except SpecError as exc:
        raise ModelFileError(f"--init {init}: not a fer-edge model ({exc})") from None
    return model, spec
