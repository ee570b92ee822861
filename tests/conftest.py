"""Shared fixtures. Tests never download anything; TensorFlow tests skip on a light install."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
#: the real FER-2013 (never committed); tests that need it skip when it is absent
FER_NPZ = Path(os.environ.get("FER_EDGE_DATA", ROOT.parent / "shared" / "data" / "fer2013.npz"))
HAS_TF = importlib.util.find_spec("tensorflow") is not None

#: `fer-edge train` flags that make tiny_cnn reach ~100 % on synthetic data in 3-4 epochs
TINY_TRAIN_ARGS = ["--arch", "tiny_cnn", "--input-size", "32", "--batch-size", "16",
                   "--no-augment", "--finetune-lr", "1e-2", "--head-lr", "1e-2",
                   "--warmup-epochs", "0", "--no-tensorboard"]


def interrupt_training_after(monkeypatch, epochs: int):
    """Make ``fer-edge train`` stop like a Ctrl-C right after epoch ``epochs`` has been
    checkpointed; returns a function that undoes it (for the ``--resume`` that follows)."""
    from fer_edge.train import fit

    real = fit._Checkpoint.on_epoch_end

    def killed(self, epoch, logs=None):
        real(self, epoch, logs)
        if epoch + 1 == epochs:
            raise KeyboardInterrupt

    monkeypatch.setattr(fit._Checkpoint, "on_epoch_end", killed)
    return lambda: monkeypatch.setattr(fit._Checkpoint, "on_epoch_end", real)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: run with --slow")
    skip_tf = pytest.mark.skip(reason="needs TensorFlow: pip install -e '.[train]'")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--slow"):
            item.add_marker(skip_slow)
        if "tf" in item.keywords and not HAS_TF:
            item.add_marker(skip_tf)


@pytest.fixture
def fer_npz() -> Path:
    if not FER_NPZ.is_file():
        pytest.skip(f"real FER-2013 not found at {FER_NPZ} (set FER_EDGE_DATA to its .npz)")
    return FER_NPZ


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a network connection fails loudly."""
    import socket

    real_connect = socket.socket.connect

    def guard(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
                "127.0.0.1", "::1", "localhost"):
            raise RuntimeError(f"tests must not use the network (tried {address})")
        return real_connect(self, address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guard)


@pytest.fixture(scope="session")
def tiny_exported(tmp_path_factory):
    """A tiny run trained on synthetic data and converted to the four builds (needs TF)."""
    if not HAS_TF:
        pytest.skip("needs TensorFlow to make the tiny builds")
    from fer_edge.cli import main

    root = tmp_path_factory.mktemp("tiny")
    assert main(["train", "--data", "synthetic", "--weights", "none", "--finetune-epochs", "3",
                 "--runs-dir", str(root), "--name", "tiny", *TINY_TRAIN_ARGS]) == 0
    run = root / "tiny"
    assert main(["convert", str(run), "--int8", "--qat-steps", "20", "--qat-lr", "1e-4",
                 "--latency-runs", "5"]) == 0
    return run


def make_spec(**changes):
    """A complete InceptionV3-style :class:`~fer_edge.spec.ModelSpec` for tests (the product
    has no spec defaults: every field comes from training or the build)."""
    from fer_edge.spec import FER2013_LABELS, CropRule, ModelSpec

    rule = CropRule(square=True, scale=1.0, shift_y=0.0, source_size=48, align=False)
    fields = dict(labels=FER2013_LABELS, input_size=75, channels=3, input_dtype="float32",
                  norm_scale=1.0 / 127.5, norm_offset=-1.0, crop=rule, detector="haar",
                  face_crops={}, tta_flip=False, arch="inception_v3")
    fields.update(changes)
    return ModelSpec(**fields)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The hardening sweep's workspace (``cli_sweep.make_workspace``): data files good and
    bad, recipes, outputs that already exist, tampered builds, runs; one per test module."""
    from cli_sweep import make_workspace

    return make_workspace(tmp_path_factory)
