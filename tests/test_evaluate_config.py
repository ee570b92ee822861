"""``fer_edge/evaluate_config.py``: ``fer-edge evaluate``'s flags and ``[evaluate]`` table come
from one dataclass; the gate, label, split and latency options are the shared ones."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fer_edge.cli import build_parser, main
from fer_edge.config import config_from_args
from fer_edge.errors import ConfigError
from fer_edge.evaluate_config import EvaluateConfig
from fer_edge.runtime import default_model_path

DEFAULT = default_model_path()
needs_default = pytest.mark.skipif(DEFAULT is None, reason="no packaged default model")

FLAGS = ["a.tflite", "b.onnx", "--data", "d.npz", "--split", "val", "--labels",
         "ferplus-majority", "--ferplus", "fp.csv", "--skip-unknown-classes", "--reference",
         "r.tflite", "--limit", "9", "--threads", "3", "--max-drop-pp", "2.5", "--max-class-p",
         "0.01", "--min-agreement", "0.5", "--class-correction", "none", "--latency-runs", "7",
         "--out", "rep", "--force"]


def _cfg(argv: list[str]) -> EvaluateConfig:
    return config_from_args(EvaluateConfig, build_parser().parse_args(["evaluate", *argv]))


def _toml(values: dict) -> str:
    lines = ["[evaluate]"]
    for k, v in values.items():
        lines.append(f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}")
    return "\n".join(lines) + "\n"


def test_flags_and_toml_give_the_same_config(tmp_path):
    by_flags = _cfg(FLAGS)
    given = {k: v for k, v in dataclasses.asdict(by_flags).items()
             if v != EvaluateConfig.__dataclass_fields__[k].default}
    assert set(given) >= {"builds", "split", "labels", "threads", "max_class_p", "force"}
    recipe = tmp_path / "eval.toml"
    recipe.write_text(_toml(given))
    by_toml = _cfg(["--config", str(recipe)])
    assert by_toml == by_flags
    assert by_toml.build_paths == ("a.tflite", "b.onnx") and by_toml.gate().max_class_p == 0.01


def test_flags_override_the_recipe(tmp_path):
    recipe = tmp_path / "eval.toml"
    recipe.write_text('[evaluate]\nlimit = 14\nlatency_runs = 3\nbuilds = "m.tflite"\n')
    cfg = _cfg(["--config", str(recipe), "--limit", "5"])
    assert (cfg.limit, cfg.latency_runs, cfg.build_paths) == (5, 3, ("m.tflite",))
    assert _cfg(["x.tflite", "--config", str(recipe)]).build_paths == ("x.tflite",)


@pytest.mark.parametrize("text, words", [
    ("[evaluate]\nlatency_run = 3\n", ["unknown key(s) latency_run", "latency_runs"]),
    ("[evaluate]\nmin_agreement = 2.0\n", ["min_agreement = 2.0", "<= 1"]),
    ("[evaluate]\nlabels = \"ferplus-soft\"\n", ["'ferplus-soft'", "fer2013, ferplus-majority"]),
    ("[evaluate]\nthreads = 0\n", ["threads = 0", ">= 1"]),
    ("[evalute]\nlimit = 3\n", ["unknown section [evalute]", "[evaluate]"]),
])
def test_bad_recipe_is_one_line_exit_2(tmp_path, capsys, text, words):
    recipe = tmp_path / "eval.toml"
    recipe.write_text(text)
    assert main(["evaluate", "m.tflite", "--data", "d", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_threads_unset_means_all_cores_and_needs_no_value():
    cfg = _cfg(["m.tflite", "--data", "d"])
    assert cfg.threads is None and cfg.latency_runs == 100
    cfg.validate()


@pytest.mark.parametrize("argv, words", [
    ([], ["pass one or more builds"]),
    (["m.tflite"], ["--data", "--people", "one of the two"]),
])
def test_missing_builds_or_data_refused(argv, words):
    with pytest.raises(ConfigError) as exc:
        _cfg(argv).validate()
    assert all(w in str(exc.value) for w in words)


@needs_default
def test_the_evaluate_table_is_what_runs(tmp_path, capsys):
    """A run given only ``--config``: builds, data, split, limit and --out all come from the
    ``[evaluate]`` table."""
    out = tmp_path / "rep"
    recipe = tmp_path / "eval.toml"
    recipe.write_text(_toml({"builds": [str(DEFAULT)], "data": "synthetic", "split": "val",
                             "limit": 21, "latency_runs": 1, "min_agreement": 0.0,
                             "out": str(out)}))
    assert main(["evaluate", "--config", str(recipe)]) == 0, capsys.readouterr().err
    text = (out / "report.md").read_text()
    assert "val split" in text
    rep = json.loads((out / "report.json").read_text())
    assert rep["parity"]["n"] == 21 and list(rep["builds"]) == ["fer_default_int8.tflite"]


def test_help_shows_each_default_once(capsys):
    sub = build_parser()._subparsers._group_actions[0].choices
    for cmd in ("evaluate", "benchmark"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: 100)" in text  # --latency-runs / --runs: the shared LATENCY_RUNS
        for action in sub[cmd]._actions:
            assert (action.help or "").lower().count("default") <= 1, (cmd, action.help)
