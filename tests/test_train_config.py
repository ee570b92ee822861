"""``fer_edge/train/config.py``: values the old ``validate()`` re-checked (and could never
reach) are refused by the field checks, one line, exit 2, before anything is read."""

from __future__ import annotations

import pytest

from fer_edge.cli import main
from fer_edge.errors import ConfigError
from fer_edge.train.config import TrainConfig


@pytest.mark.parametrize("flag, value, words", [
    ("--budget-min", "-1", ["--budget-min -1.0", ">= 0"]),
    ("--head-epochs", "-1", ["--head-epochs -1", ">= 0"]),
    ("--finetune-epochs", "-2", ["--finetune-epochs -2", ">= 0"]),
    ("--batch-size", "0", ["--batch-size 0", ">= 1"]),
    ("--label-smoothing", "1", ["--label-smoothing 1.0", "< 1"]),
    ("--dropout", "-0.1", ["--dropout -0.1", ">= 0"]),
])
def test_out_of_range_is_one_line_exit_2(tmp_path, capsys, flag, value, words):
    assert main(["train", "--data", "synthetic", "--runs-dir", str(tmp_path), flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert list(tmp_path.iterdir()) == []


def test_validate_still_checks_what_fields_cannot():
    with pytest.raises(ConfigError, match="needs --ferplus"):
        TrainConfig(data="synthetic", labels="ferplus-majority").validate()
    with pytest.raises(ConfigError, match="minimum of 75"):
        TrainConfig(data="synthetic", input_size=40).validate()
    with pytest.raises(ConfigError, match="out of range"):  # the API path is checked too
        TrainConfig(data="synthetic", budget_min=-1.0).validate()
