"""Run folders (issue 34): one process trains a run at a time (``--resume`` while the run is
still training is refused before anything is rewritten), and Ctrl-C before the first epoch
does not advise ``--resume`` for a run it removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from cli_sweep import run_cli, snapshot
from conftest import TINY_TRAIN_ARGS

from fer_edge.errors import ConfigError
from fer_edge.train.config import TrainConfig
from fer_edge.train.runs import lock_run, unlock_run

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)")


def _fake_run(root: Path) -> Path:
    run = root / "runs" / "r"
    run.mkdir(parents=True)
    cfg = asdict(TrainConfig(data="synthetic", arch="tiny_cnn", input_size=32, weights="none"))
    (run / "config.json").write_text(json.dumps({"config": cfg}))
    (run / "history.csv").write_text("stage,epoch\nfinetune,1\n")
    return run


@pytest.fixture
def held_run(tmp_path):
    """A run folder whose lock another process holds (as a training run does)."""
    run = _fake_run(tmp_path)
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    yield run, p
    p.kill()
    p.wait()


def test_resume_while_training_is_refused_before_anything_changes(held_run, capsys):
    run, _ = held_run
    before = snapshot(run.parent)
    rc, err, _ = run_cli(["train", "--resume", "--runs-dir", str(run.parent), "--name", "r"],
                         capsys)
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("fer-edge train: error: "), err
    assert "training this run right now" in err[0] and "--resume" in err[0]
    assert snapshot(run.parent) == before


def test_lock_is_released_when_the_holder_dies(held_run):
    run, p = held_run
    with pytest.raises(ConfigError, match="right now"):
        lock_run(run)
    p.send_signal(signal.SIGKILL)  # a crash: the system drops the lock
    p.wait()
    lock_run(run)
    lock_run(run)  # again in the same process: a no-op
    unlock_run(run)


@pytest.mark.tf
@pytest.mark.slow
def test_resume_refused_while_a_real_training_runs(tmp_path, capsys):
    """A real `fer-edge train` in another process holds its run until it exits."""
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "fer_edge.cli", "train", "--data", "synthetic", "--weights",
           "none", "--runs-dir", str(runs), "--name", "live", *TINY_TRAIN_ARGS,
           "--finetune-epochs", "200"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in p.stderr:  # wait until its first epoch is saved
            if "finetune epoch 1:" in line:
                break
        else:
            pytest.fail("the training run ended before its first epoch")
        before = snapshot(runs)
        rc, err, _ = run_cli(["train", "--resume", "--runs-dir", str(runs), "--name", "live"],
                             capsys)
        assert rc == 2 and "training this run right now" in err[-1], err
        assert (runs / "live" / "config.json").read_bytes() == Path(
            [k for k in before if k.endswith("config.json")][0]).read_bytes()
    finally:
        p.kill()
        p.wait()
    time.sleep(0.1)
    lock_run(runs / "live")  # the killed run's lock went with it
    unlock_run(runs / "live")


@pytest.mark.tf
def test_ctrl_c_before_the_first_epoch_does_not_advise_resume(tmp_path, monkeypatch, capsys):
    from fer_edge.train import fit

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "build_model", interrupted)
    rc, err, _ = run_cli(["train", "--data", "synthetic", "--weights", "none", "--runs-dir",
                          str(tmp_path), "--name", "early", *TINY_TRAIN_ARGS], capsys)
    assert rc == 130
    assert not (tmp_path / "early").exists()
    assert "removed" in err[-1] and "--resume" not in err[-1], err
    assert "interrupted" in err[-1]


@pytest.mark.tf
def test_start_up_says_what_it_does(tmp_path, capsys):
    """`train` is never silent for long before its first progress line: each start-up step
    (TensorFlow, data, resizing, the model, the first step) is logged as it begins."""
    rc, err, _ = run_cli(["train", "--data", "synthetic", "--weights", "none", "--runs-dir",
                          str(tmp_path), "--name", "talk", *TINY_TRAIN_ARGS,
                          "--finetune-epochs", "1"], capsys)
    assert rc == 0, err
    text = "\n".join(err)
    steps = ["reading data: synthetic", "loading TensorFlow", "resizing 840 faces to 32x32",
             "building the model", "first steps", "first step done"]
    at = [text.find(s) for s in steps]
    assert -1 not in at and at == sorted(at), text


@pytest.mark.tf
def test_resume_refuses_a_new_input_size_of_a_real_run(tiny_exported, tmp_path, capsys):
    import shutil

    run = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_exported, run, ignore=shutil.ignore_patterns("export"))
    before = snapshot(run)
    rc, err, _ = run_cli(["train", "--resume", "--runs-dir", str(tmp_path / "runs"), "--name",
                          "tiny", "--input-size", "48"], capsys)
    assert rc == 2 and "--input-size 48" in err[-1] and "the run has 32" in err[-1]
    assert snapshot(run) == before
