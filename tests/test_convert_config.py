"""``fer_edge/convert/config.py``: QAT and calibration counts out of range are refused by the
field checks (the old ``validate()`` line re-checking them could never fire), one line,
exit 2, before TensorFlow or any file is touched."""

from __future__ import annotations

import pytest

from fer_edge.cli import main
from fer_edge.convert.config import ConvertConfig
from fer_edge.errors import ConfigError
from fer_edge.gate import Gate
from fer_edge.options import LATENCY_RUNS


@pytest.mark.parametrize("flag, value, words", [
    ("--qat-epochs", "-1", ["--qat-epochs -1", ">= 0"]),
    ("--qat-steps", "-1", ["--qat-steps -1", ">= 0"]),
    ("--calib-faces", "0", ["--calib-faces 0", ">= 1"]),
    ("--calib-batch-size", "0", ["--calib-batch-size 0", ">= 1"]),
])
def test_out_of_range_is_one_line_exit_2(tmp_path, capsys, flag, value, words):
    assert main(["convert", str(tmp_path / "run"), flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert list(tmp_path.iterdir()) == []


def test_shared_defaults():
    cfg = ConvertConfig()
    assert cfg.gate() == Gate() and cfg.latency_runs == LATENCY_RUNS and cfg.split == "test"
    with pytest.raises(ConfigError, match="--calib-select"):
        ConvertConfig(source="r", calib_select="4,-1").validate()
