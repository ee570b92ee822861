"""train/wise_ft.py: models on the line between a model and its fine-tune, scored on val."""

from __future__ import annotations

import csv
import importlib
import shutil

import numpy as np
import pytest

from fer_edge.data.synthetic import write_ferplus, write_npz


def _script():
    return importlib.import_module("train.wise_ft")  # the repo root is on pytest's pythonpath


def test_interpolate_is_the_weighted_mean_and_refuses_mismatches():
    mod = _script()
    a = [np.zeros((2, 3), np.float32), np.ones(4, np.float32)]
    b = [np.full((2, 3), 4.0, np.float32), np.full(4, 3.0, np.float32)]
    mid = mod.interpolate(a, b, 0.25)
    assert mid[0].dtype == np.float32
    np.testing.assert_allclose(mid[0], 1.0)
    np.testing.assert_allclose(mid[1], 1.5)
    np.testing.assert_array_equal(mod.interpolate(a, b, 0.0)[1], a[1])
    with pytest.raises(ValueError, match="alpha"):
        mod.interpolate(a, b, 1.5)
    with pytest.raises(ValueError, match="differ"):
        mod.interpolate(a, [b[0], np.ones(5, np.float32)], 0.5)


@pytest.mark.tf
def test_writes_mixed_models_and_val_scores(tiny_exported, tmp_path):
    from fer_edge.train.report import load_float_model

    mod = _script()
    start = tiny_exported
    fine = tmp_path / "fine"
    fine.mkdir()
    shutil.copy(start / "spec.json", fine / "spec.json")
    m = load_float_model(start / "model_float.h5")
    w0 = m.get_weights()
    rng = np.random.default_rng(0)
    w1 = [w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in w0]
    m.set_weights(w1)
    m.save(str(fine / "model_float.h5"))

    npz = write_npz(tmp_path / "fer.npz", n_train=20, n_val=40, n_test=10)
    fp = write_ferplus(tmp_path / "fp.csv", npz)
    out = tmp_path / "wise"
    assert mod.main([str(start), str(fine), str(out), "--alphas", "0.5", "--data", str(npz),
                     "--ferplus", str(fp), "--finetune-end", "best"]) == 0
    got = load_float_model(out / "alpha_0.5" / "model_float.h5").get_weights()
    for g, a, b in zip(got, w0, w1):
        np.testing.assert_allclose(g, (a + b) / 2, atol=1e-6)
    with (out / "val_scores.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["alpha"]) for r in rows] == [0.0, 0.5, 1.0]
    assert all(0.0 <= float(r["ferplus_val_acc"]) <= 1.0 for r in rows)
    # nothing is overwritten
    with pytest.raises(SystemExit, match="exists"):
        mod.main([str(start), str(fine), str(out), "--data", str(npz), "--finetune-end", "best"])


def test_refuses_a_folder_without_a_model(tmp_path):
    mod = _script()
    with pytest.raises(SystemExit, match="model_float.h5"):
        mod.main([str(tmp_path), str(tmp_path), str(tmp_path / "o"), "--data", "x.npz"])


@pytest.mark.tf
def test_last_epoch_weights_are_the_checkpoints_ema_average(tiny_exported, tmp_path):
    """--finetune-end last: the EMA shadow of the run's resume checkpoint, weight by weight."""
    from conftest import TINY_TRAIN_ARGS

    from fer_edge.cli import main
    from fer_edge.train._keras import tf
    from fer_edge.train.report import load_float_model

    mod = _script()
    assert main(["train", "--data", "synthetic", "--init", str(tiny_exported), "--weights",
                 "none", "--head-epochs", "0", "--finetune-epochs", "2", "--ema", "0.9",
                 "--runs-dir", str(tmp_path), "--name", "ft", *TINY_TRAIN_ARGS]) == 0
    run = tmp_path / "ft"
    model = load_float_model(run / "model_float.h5")
    got = mod.last_epoch_weights(run, model)
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run / "ckpt" / "finetune")))
    want = [reader.get_tensor(f"ema/shadow/{i}/.ATTRIBUTES/VARIABLE_VALUE")
            for i in range(len(got))]
    assert len(got) == len(model.weights) > 0
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # the raw last-epoch weights are back in the model afterwards, and they differ from the EMA
    assert any(not np.array_equal(g, v) for g, v in zip(got, model.get_weights()))

    with pytest.raises(SystemExit, match="checkpoint"):
        mod.last_epoch_weights(tiny_exported / "export", model)
