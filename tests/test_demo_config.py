"""``fer_edge/demo/config.py``: smoothing defaults defined once (with the tracker); values the
old ``validate()`` re-checked (and could never reach) are refused by the field checks."""

from __future__ import annotations

import pytest

from fer_edge.cli import main
from fer_edge.demo.config import DemoConfig
from fer_edge.demo.tracking import EMA, HYSTERESIS, Tracker
from fer_edge.errors import ConfigError


def test_smoothing_defaults_have_one_definition():
    cfg, tracker = DemoConfig(), Tracker()
    assert (cfg.ema, cfg.hysteresis) == (tracker.ema, tracker.hysteresis) == (
        EMA, HYSTERESIS)


@pytest.mark.parametrize("args, words", [
    (["--keep-alive", "-1"], ["--keep-alive -1", ">= 0"]),
    (["--min-face", "-2"], ["--min-face -2", ">= -1"]),
    (["--flip-tta", "sometimes"], ["--flip-tta", "invalid choice: 'sometimes'"]),
])
def test_bad_flag_is_one_line_exit_2(capsys, args, words):
    try:  # argparse refuses a choice itself (SystemExit); the field checks return 2
        rc = main(["demo", "--video", "sample", "--headless", *args])
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


@pytest.mark.parametrize("text, words", [
    ('flip_tta = "sometimes"', ["flip_tta = ", "'sometimes'", "alternate, model, on, off"]),
    ("keep_alive = -3", ["keep_alive = -3", ">= 0"]),
])
def test_bad_recipe_value_is_one_line_exit_2(tmp_path, capsys, text, words):
    recipe = tmp_path / "demo.toml"
    recipe.write_text(f"[demo]\n{text}\n")
    assert main(["demo", "--video", "sample", "--headless", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_api_config_is_checked_the_same_way():
    with pytest.raises(ConfigError, match="--flip-tta 'sometimes'"):
        DemoConfig(video="sample", flip_tta="sometimes").validate()
    with pytest.raises(ConfigError, match="--keep-alive -1"):
        DemoConfig(video="sample", keep_alive=-1).validate()
