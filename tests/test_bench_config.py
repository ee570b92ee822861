"""``fer_edge/bench/config.py``: ``fer-edge benchmark``'s flags and ``[benchmark]`` table come
from one dataclass."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from fer_edge.bench import cli as bench_cli
from fer_edge.bench.config import BenchmarkConfig
from fer_edge.cli import build_parser, main
from fer_edge.config import config_from_args
from fer_edge.errors import ConfigError
from fer_edge.options import LATENCY_RUNS
from fer_edge.runtime import default_model_path

DEFAULT = default_model_path()
needs_default = pytest.mark.skipif(DEFAULT is None, reason="no packaged default model")


def _cfg(argv: list[str]) -> BenchmarkConfig:
    return config_from_args(BenchmarkConfig, build_parser().parse_args(["benchmark", *argv]))


def _toml(values: dict) -> str:
    return "[benchmark]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def test_defaults_are_the_old_flags():
    cfg = _cfg(["m.tflite"])
    assert (cfg.split, cfg.limit, cfg.threads, cfg.runs, cfg.video, cfg.out) == (
        "test", 0, "1,all", LATENCY_RUNS, "sample", ".")
    assert cfg.thread_counts() == sorted({1, os.cpu_count() or 1})


def test_flags_and_toml_give_the_same_config(tmp_path):
    by_flags = _cfg(["a.tflite", "exports/", "--data", "d.npz", "--split", "val", "--limit",
                     "50", "--threads", "1,2", "--runs", "7", "--video", "", "--out", "res"])
    given = {k: v for k, v in dataclasses.asdict(by_flags).items()
             if v != BenchmarkConfig.__dataclass_fields__[k].default}
    assert set(given) == {"builds", "data", "split", "limit", "threads", "runs", "video", "out"}
    recipe = tmp_path / "bench.toml"
    recipe.write_text(_toml(given))
    assert _cfg(["--config", str(recipe)]) == by_flags
    assert _cfg(["--config", str(recipe), "--runs", "3"]).runs == 3


@pytest.mark.parametrize("text, words", [
    ("[benchmark]\nrun = 3\n", ["unknown key(s) run", "runs"]),
    ("[benchmark]\nruns = 0\n", ["runs = 0", ">= 1"]),
    ("[benchmark]\nthreads = \"0,abc\"\n", ["--threads '0,abc'", "1..256"]),
    ("[benchmark]\nsplit = \"dev\"\n", ["'dev'", "train, val, test"]),
])
def test_bad_recipe_is_one_line_exit_2(tmp_path, capsys, text, words):
    recipe = tmp_path / "bench.toml"
    recipe.write_text(text)
    assert main(["benchmark", "m.tflite", "--config", str(recipe), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_no_builds_refused():
    with pytest.raises(ConfigError, match="pass one or more builds"):
        _cfg([]).validate()


@needs_default
def test_the_benchmark_table_is_what_runs(tmp_path, monkeypatch, capsys):
    """A run given only ``--config``: builds, threads, runs, video and --out come from the
    ``[benchmark]`` table (the timing itself is replaced: no speed is asserted here)."""
    calls = []

    def fake(build, threads, runs, video, face):
        calls.append((build.name, threads, runs, video))
        return {"latency_ms_median": 1.0, "latency_ms_p90": 1.0, "peak_rss_mb": 1.0}

    monkeypatch.setattr(bench_cli, "_measure_fresh", fake)
    out = tmp_path / "res"
    out.mkdir()
    recipe = tmp_path / "bench.toml"
    recipe.write_text(_toml({"builds": [str(DEFAULT)], "threads": "1", "runs": 3, "video": "",
                             "out": str(out)}))
    assert main(["benchmark", "--config", str(recipe)]) == 0, capsys.readouterr().err
    assert calls == [("fer_default_int8.tflite", 1, 3, "")]
    assert len(list(out.glob("*.csv"))) == 1
