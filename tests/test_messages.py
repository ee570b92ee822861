"""Weak messages of issue 34 made strong: each bad input is one line naming the problem and
the fix, exit 2, nothing in the workspace created, changed or lost (the sweep's contract, see
``cli_sweep.py``). Light tier: `train` checks these before it needs TensorFlow."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict

import numpy as np
import pytest
from cli_sweep import run_cli, snapshot
from conftest import make_spec
from test_backbones import write_class_folders

from fer_edge.data.synthetic import make_faces, write_npz
from fer_edge.runtime import default_model_path
from fer_edge.train.config import TrainConfig

DEFAULT = default_model_path()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    w = tmp_path_factory.mktemp("messages")
    (w / "recipes").mkdir()
    (w / "empty.toml").write_text("# nothing\n\n")
    write_npz(w / "syn.npz", 70, 14, 14)
    x, _ = make_faces(40, 0)
    np.savez(w / "one_class.npz", images=x, labels=np.full(40, 3, np.uint8),
             usage=np.arange(40) % 3)
    folders = write_class_folders(w / "faces", ["angry", "happy", "sad"])
    (folders / "fear").mkdir()  # an empty class folder
    run = w / "runs" / "r"
    (run / "export").mkdir(parents=True)
    (run / "model_float.h5").write_bytes(b"x")
    (run / "config.json").write_text("{}")
    return w


TRAIN = "train --runs-dir {W}/out --weights none --arch tiny_cnn --input-size 32 "
CASES = [
    ("config-folder", "train --config {W}/recipes", ["recipes: is a folder", ".toml"]),
    ("config-dev-null", "train --config /dev/null", ["not a regular file", ".toml"]),
    ("config-empty", "train --config {W}/empty.toml", ["is empty", "drop --config"]),
    ("batch-huge", TRAIN + "--data synthetic --batch-size 1000000000",
     ["--batch-size 1000000000", "<= 65536"]),
    ("batch-over-faces", TRAIN + "--data {W}/syn.npz --batch-size 500",
     ["--batch-size 500", "training faces", "at most"]),
    ("one-class-npz", TRAIN + "--data {W}/one_class.npz --imbalance none",
     ["no training face of angry", "add faces"]),
    ("empty-class-folder", TRAIN + "--data {W}/faces", ["no training face of", "fear",
                                                        "add faces"]),
    ("limit-5", TRAIN + "--data synthetic --limit 5", ["no training face of", "--limit 5",
                                                       "raise --limit"]),
    ("eval-run-folder", "evaluate {W}/runs/r --data {W}/syn.npz",
     ["is a folder", "train run", "export"]),
    ("eval-folder", "evaluate {W}/recipes --data {W}/syn.npz", ["is a folder", ".tflite"]),
    ("bench-run-folder", "benchmark {W}/runs/r --video ''", ["train run", "export"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_weak_message_is_now_one_strong_line(case, ws, capsys):
    _, cmd, words = case
    before = snapshot(ws)
    rc, err, _ = run_cli(shlex.split(cmd.format(W=ws)), capsys)
    assert rc == 2, err
    assert not any("Traceback" in ln for ln in err), err
    assert [ln for ln in err if ": error: " in ln] == err[-1:], err
    for w in words:
        assert w in err[-1], f"{w!r} not in {err[-1]!r}"
    assert "class weights" not in err[-1]
    assert snapshot(ws) == before


def test_help_never_says_default_twice(capsys):
    from fer_edge.cli import main

    for cmd in ("train", "convert", "demo"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert not re.search(r"\(default: [^)]*\) \(default:", text), cmd


def test_resume_notes_unknown_and_missing_keys(tmp_path, capsys):
    """A run saved by another version resumes with a note on what it ignores and defaults
    (stopped here by the run lock a second process holds, after the notes)."""
    from fer_edge.cli import build_parser
    from fer_edge.train.cli import _resumed_config

    run = tmp_path / "r"
    run.mkdir()
    saved = asdict(TrainConfig(data="synthetic", arch="tiny_cnn", input_size=32,
                               weights="none"))
    del saved["mix"]
    saved["old_knob"] = 3
    (run / "config.json").write_text(json.dumps({"config": saved}))
    args = build_parser().parse_args(["train", "--resume", "--runs-dir", str(tmp_path),
                                      "--name", "r"])
    from fer_edge.cli import setup_logging

    setup_logging(False)
    cfg = _resumed_config(TrainConfig(resume=True, runs_dir=str(tmp_path), name="r"), args)
    err = capsys.readouterr().err
    assert "does not know, ignored: old_knob" in err
    assert "defaults apply: mix" in err
    assert cfg.mix == TrainConfig().mix and cfg.arch == "tiny_cnn"


@pytest.mark.skipif(DEFAULT is None, reason="this checkout has no packaged model")
def test_eval_folder_of_builds_lists_them(tmp_path, capsys):
    (tmp_path / "builds").mkdir()
    (tmp_path / "builds" / "a.tflite").write_bytes(DEFAULT.read_bytes())
    rc, err, _ = run_cli(["evaluate", str(tmp_path / "builds"), "--data", "synthetic"],
                         capsys)
    assert rc == 2 and "it holds a.tflite" in err[-1], err


@pytest.mark.tf
def test_convert_corrupt_run_spec_and_unknown_class_folders(tmp_path, capsys):

    run = tmp_path / "run"
    run.mkdir()
    (run / "model_float.h5").write_bytes(b"not really a model")
    (run / "config.json").write_text("{}")
    rc, err, _ = run_cli(["convert", str(run), "--data", "synthetic"], capsys)
    assert rc == 2 and "not a `fer-edge train` config.json" in err[-1], err
    (run / "config.json").write_text('{"config": {}}')
    (run / "spec.json").write_text('{"labels": [')
    faces = write_class_folders(tmp_path / "ck", ["angry", "happy", "contempt"])
    before = snapshot(tmp_path)
    rc, err, _ = run_cli(["convert", str(run), "--data", str(faces)], capsys)
    assert rc == 2 and "not valid JSON" in err[-1] and "train the run again" in err[-1], err
    make_spec().write(run / "spec.json")
    before = snapshot(tmp_path)
    rc, err, _ = run_cli(["convert", str(run), "--data", str(faces)], capsys)
    assert rc == 2 and "contempt" in err[-1] and "--skip-unknown-classes" in err[-1], err
    # the flag it advises is one convert takes: the data now loads, the (fake) model does not
    rc, err, _ = run_cli(["convert", str(run), "--data", str(faces), "--skip-unknown-classes"],
                         capsys)
    assert rc == 2 and "cannot load the float model" in err[-1], err
    assert snapshot(tmp_path) == before


def test_ctrl_c_while_the_commands_load_is_one_line_exit_130(monkeypatch, capsys):
    """Ctrl-C in the first second (importing every stage) is no traceback either."""
    import fer_edge.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["demo", "--video", "sample"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["fer-edge: interrupted"]
