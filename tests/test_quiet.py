"""TensorFlow's start-up lines (cuInit, oneDNN, absl) are kept off the terminal by default and
shown with ``-v`` (issue 34); other lines written to descriptor 2 meanwhile get through."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_edge.quiet import NOISE, native_noise_filtered

ROOT = Path(__file__).resolve().parents[1]
CUINIT = (b"E0000 00:00:1796578571.9 5634 cuda_platform.cc:52] failed call to cuInit: "
          b"INTERNAL: CUDA error\n")


@pytest.fixture
def root_level():
    old = logging.getLogger().level
    yield logging.getLogger()
    logging.getLogger().setLevel(old)


def test_noise_is_dropped_and_the_rest_kept(capfd, root_level):
    root_level.setLevel(logging.INFO)
    with native_noise_filtered():
        os.write(2, CUINIT + b"a real problem\n")
    err = capfd.readouterr().err
    assert "cuInit" not in err and "a real problem" in err


def test_verbose_shows_everything(capfd, root_level):
    root_level.setLevel(logging.DEBUG)
    with native_noise_filtered():
        os.write(2, CUINIT)
    assert "cuInit" in capfd.readouterr().err


def test_descriptor_restored_after_an_error(capfd, root_level):
    root_level.setLevel(logging.INFO)
    with pytest.raises(RuntimeError), native_noise_filtered():
        raise RuntimeError
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err


def _import_stderr(verbose: bool) -> str:
    code = ("import logging; logging.basicConfig(level=logging.%s); "
            "import fer_edge.train._keras" % ("DEBUG" if verbose else "INFO"))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True).stderr


@pytest.mark.tf
def test_tensorflow_import_is_quiet():
    quiet = _import_stderr(False)
    assert not [n for n in NOISE if n in quiet], quiet


@pytest.mark.tf
@pytest.mark.slow
def test_tensorflow_import_shows_its_lines_with_verbose():
    loud = _import_stderr(True)
    if not [n for n in NOISE if n in loud]:
        pytest.skip("TensorFlow printed no start-up lines on this machine")
