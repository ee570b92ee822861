"""``fer-edge train`` on a tiny network: stages, freezing, resume, CLI errors, run folder."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from cli_sweep import run_cli
from conftest import make_spec

from fer_edge.cli import main
from fer_edge.data.synthetic import write_npz

pytestmark = pytest.mark.tf

from conftest import TINY_TRAIN_ARGS as TINY  # noqa: E402
from conftest import interrupt_training_after  # noqa: E402


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("data") / "syn.npz", 280, 70, 140)


def _history(run):
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


def test_train_cli_end_to_end(npz, tmp_path):
    assert main(["train", "--data", str(npz), "--weights", "none", "--finetune-epochs", "4",
                 "--runs-dir", str(tmp_path), "--name", "r", *TINY]) == 0
    run = tmp_path / "r"
    for f in ("config.json", "spec.json", "model_float.h5", "history.csv", "eval/test_report.json",
              "eval/test_report.md", "eval/confusion.png"):
        assert (run / f).is_file(), f
    spec = json.loads((run / "spec.json").read_text())
    assert spec["labels"][1] == "disgust" and spec["input_size"] == 32
    assert spec["extra"]["float_test_accuracy"] > 0.5  # synthetic classes are learnable
    rep = json.loads((run / "eval/test_report.json").read_text())["models"]["float"]
    assert rep["n"] == 140 and len(rep["per_class"]) == 7
    assert [r["epoch"] for r in _history(run)] == ["1", "2", "3", "4"]
    # a second run never overwrites the first
    assert main(["train", "--data", str(npz), "--weights", "none", "--runs-dir", str(tmp_path),
                 "--name", "r", *TINY]) == 2


def test_two_stages_from_pretrained_and_frozen_base(npz, tmp_path):
    assert main(["train", "--data", str(npz), "--weights", "none", "--finetune-epochs", "2",
                 "--runs-dir", str(tmp_path), "--name", "base", *TINY]) == 0
    assert main(["train", "--data", str(npz), "--weights", str(tmp_path / "base/model_float.h5"),
                 "--head-epochs", "2", "--finetune-epochs", "2", "--unfreeze-blocks", "1",
                 "--runs-dir", str(tmp_path), "--name", "tl", *TINY]) == 0
    run = tmp_path / "tl"
    assert (run / "stage1_float.h5").is_file() and (run / "model_float.h5").is_file()
    assert [r["stage"] for r in _history(run)] == ["head", "head", "finetune", "finetune"]
    models = json.loads((run / "eval/test_report.json").read_text())["models"]
    assert list(models) == ["stage 1 (transfer)", "final"]
    md = (run / "eval/test_report.md").read_text()
    assert "stage 1 (transfer) recall" in md


def test_stage_freezing_rules():
    from fer_edge.train._keras import keras
    from fer_edge.train.model import build_model, set_stage

    model = build_model(make_spec(input_size=32, arch="tiny_cnn"), "none")
    set_stage(model, "head")
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert trainable == {"probs"}
    set_stage(model, "finetune", unfreeze_blocks=1, freeze_bn=True)
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert trainable == {"block3_conv", "probs"}  # BN of the unfrozen block stays frozen
    set_stage(model, "finetune", unfreeze_blocks=-1, freeze_bn=False)
    assert all(layer.trainable for layer in model.layers)

    # frozen weights do not move in stage 1; the head does
    set_stage(model, "head")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    before = {w.name: w.numpy().copy() for w in model.weights}
    x = np.random.default_rng(0).normal(size=(16, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(16) % 7, epochs=2, verbose=0)
    for w in model.weights:
        moved = not np.array_equal(before[w.name], w.numpy())
        assert moved == w.name.startswith("probs"), w.name


def test_resume_after_interruption(npz, tmp_path, monkeypatch):

    restore = interrupt_training_after(monkeypatch, 2)
    args = ["train", "--data", str(npz), "--weights", "none", "--finetune-epochs", "5",
            "--runs-dir", str(tmp_path), "--name", "k", *TINY]
    assert main(args) == 130
    run = tmp_path / "k"
    assert [r["epoch"] for r in _history(run)] == ["1", "2"]
    assert not (run / "eval").exists()
    assert not list(run.glob(".*part*"))  # no half-written file left
    restore()
    assert main(["train", "--resume", "--runs-dir", str(tmp_path), "--name", "k"]) == 0
    assert [r["epoch"] for r in _history(run)] == ["1", "2", "3", "4", "5"]
    assert (run / "eval/test_report.json").is_file()
    # a finished run resumed as is does nothing; with more epochs it continues
    assert main(["train", "--resume", "--runs-dir", str(tmp_path), "--name", "k"]) == 0
    assert len(_history(run)) == 5
    assert main(["train", "--resume", "--runs-dir", str(tmp_path), "--name", "k",
                 "--finetune-epochs", "6"]) == 0
    assert [r["epoch"] for r in _history(run)] == ["1", "2", "3", "4", "5", "6"]


def test_history_row_of_a_retrained_epoch_replaces_the_old_one(tmp_path):
    """Killed between the history row and the resume checkpoint, a run trains that epoch
    again when resumed: the history keeps one row per stage and epoch, the newest."""
    from fer_edge.train.fit import append_history

    path = tmp_path / "history.csv"
    append_history(path, {"stage": "finetune", "epoch": 1, "val_accuracy": 0.3})
    append_history(path, {"stage": "finetune", "epoch": 2, "val_accuracy": 0.4})
    append_history(path, {"stage": "finetune", "epoch": 2, "val_accuracy": 0.45})
    append_history(path, {"stage": "head", "epoch": 1, "val_accuracy": 0.2})
    rows = _history(tmp_path)
    assert [(r["stage"], r["epoch"], r["val_accuracy"]) for r in rows] == [
        ("finetune", "1", "0.3"), ("finetune", "2", "0.45"), ("head", "1", "0.2")]


def test_bad_data_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fer_edge", "train", "--data",
                        str(tmp_path / "missing.csv"), "--weights", "none"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    # TensorFlow's own C++ start-up lines (e.g. "failed call to cuInit: CUDA error" on a
    # machine without a GPU driver) are printed before absl logging starts and cannot be
    # silenced; fer-edge's part must be exactly one line, the last
    ours = [ln for ln in r.stderr.splitlines() if ln.startswith("fer-edge")]
    assert len(ours) == 1 and "missing.csv: no such file" in ours[0]
    assert r.stderr.rstrip().splitlines()[-1] == ours[0]
    assert not (tmp_path / "runs").exists()  # no run folder made for bad input


def test_resume_without_run_is_an_error(tmp_path):
    assert main(["train", "--resume", "--runs-dir", str(tmp_path / "none")]) == 2


@pytest.mark.slow
def test_inception_v3_75_builds_and_steps():
    from fer_edge.train._keras import keras
    from fer_edge.train.model import build_model, set_stage

    model = build_model(make_spec(input_size=75), "none")
    assert model.output_shape == (None, 7) and model.input_shape == (None, 75, 75, 3)
    assert 21e6 < model.count_params() < 23e6
    set_stage(model, "finetune", unfreeze_blocks=2, freeze_bn=True)
    names = [layer.name for layer in model.layers]
    first = names.index("mixed8") + 1
    assert all(not layer.trainable for layer in model.layers[:first])
    assert any(layer.trainable for layer in model.layers[first:])
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    x = np.zeros((2, 75, 75, 3), "float32")
    assert np.isfinite(model.train_on_batch(x, np.array([0, 1])))


@pytest.mark.tf
def test_threads_after_tensorflow_started_is_a_warning_not_a_crash(caplog):
    """A second run in one process (studies/transfer_ckplus/transfer_ckplus.py after its
    zero-shot pass) cannot change TensorFlow's thread pools: configure_tf warns and carries
    on."""
    import tensorflow as tf

    from fer_edge.train.config import TrainConfig
    from fer_edge.train.fit import configure_tf

    tf.constant(1.0) + 1.0  # TensorFlow's context is initialised from here on
    # 3: a count no other test sets (setting the count TensorFlow already has is a no-op)
    configure_tf(TrainConfig(data="synthetic", threads=3))
    assert "--threads 3 not applied" in caplog.text


@pytest.mark.tf
def test_train_failing_at_start_up_frees_the_name(tmp_path, capsys):
    from conftest import TINY_TRAIN_ARGS

    args = ["train", "--data", "synthetic", "--weights", str(tmp_path / "missing.h5"),
            "--runs-dir", str(tmp_path / "runs"), "--name", "x", *TINY_TRAIN_ARGS]
    rc, err, _ = run_cli(args, capsys)
    assert rc == 2 and "missing.h5" in err[-1] and "weights file not found" in err[-1]
    assert not (tmp_path / "runs" / "x").exists()
