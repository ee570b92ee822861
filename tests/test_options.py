"""``fer_edge/options.py``: options several stages take have one default each."""

from __future__ import annotations

import inspect

import pytest

from fer_edge.bench.config import BenchmarkConfig
from fer_edge.convert.config import ConvertConfig
from fer_edge.errors import ConfigError
from fer_edge.evaluate import latency_ms
from fer_edge.evaluate_config import EvaluateConfig
from fer_edge.gate import Gate
from fer_edge.options import LATENCY_RUNS, check_labels, labels_opt
from fer_edge.train.config import TrainConfig


def test_one_default_each():
    ev, cv, bm, tr = EvaluateConfig(), ConvertConfig(), BenchmarkConfig(), TrainConfig()
    assert ev.gate() == cv.gate() == Gate()
    assert ev.latency_runs == cv.latency_runs == bm.runs == LATENCY_RUNS
    assert inspect.signature(latency_ms).parameters["runs"].default == LATENCY_RUNS
    assert ev.split == cv.split == bm.split == "test"
    assert ev.labels == tr.labels == "fer2013" and ev.ferplus == tr.ferplus == ""


def test_labels_need_the_ferplus_file():
    check_labels("fer2013", "")
    with pytest.raises(ConfigError, match="--labels ferplus-soft needs --ferplus"):
        check_labels("ferplus-soft", "")


def test_label_choices_are_known_sources():
    with pytest.raises(ValueError):
        labels_opt("x", ("fer2013", "ferplus-hard"))
