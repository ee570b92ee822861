"""``fer-edge benchmark`` writes one CSV row per build and thread count (no timing asserts)."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from cli_sweep import run_cli, snapshot

from fer_edge.bench import cli as bench_cli
from fer_edge.bench.cli import _measure_fresh
from fer_edge.cli import main
from fer_edge.runtime import default_model_path


@pytest.mark.tf
def test_benchmark_csv(tiny_exported, tmp_path):
    build = tiny_exported / "export" / "fer_tiny_cnn_32_int8.tflite"
    assert main(["benchmark", str(build), "--data", "synthetic", "--limit", "50",
                 "--threads", "1,2", "--runs", "5", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["threads"] for r in rows] == ["1", "2"]
    for r in rows:
        assert float(r["latency_ms_median"]) > 0 and float(r["e2e_fps"]) > 0
        assert 0 <= float(r["accuracy"]) <= 1 and r["cpu"] and r["sha256"]
        assert float(r["peak_rss_mb"]) > 0  # measured in the build's own process
    # a second run on the same day never replaces the first CSV
    first = path.read_text()
    assert main(["benchmark", str(build), "--threads", "1", "--runs", "2", "--video", "",
                 "--out", str(tmp_path)]) == 0
    second = sorted(tmp_path.glob("*.csv"))
    assert len(second) == 2 and path.read_text() == first
    assert second[1].name == path.name.replace(".csv", "_2.csv")


def test_benchmark_missing_build(tmp_path, capsys):
    assert main(["benchmark", str(tmp_path / "nope.tflite")]) == 2
    assert "no such build" in capsys.readouterr().err


# --- issue 34 ----------------------------------------------------------------------------
DEFAULT = default_model_path()
needs_default = pytest.mark.skipif(DEFAULT is None, reason="this checkout has no packaged model")


@needs_default
def test_a_child_reads_its_own_peak_memory_not_its_parents():
    """A parent that holds 400 MB (as one that loaded big builds did) must not make the child
    that measures a build read 400 MB: the peak is the child's own."""
    ballast = np.ones(400_000_000 // 8)
    row = _measure_fresh(DEFAULT, 1, 3, "", "")
    assert ballast[-1] == 1
    assert row["peak_rss_mb"] < 350, row


@pytest.mark.tf
def test_a_small_build_reads_small_after_a_big_one(tiny_exported, tmp_path):
    if DEFAULT is None:
        pytest.skip("this checkout has no packaged model")
    tiny = tiny_exported / "export" / "fer_tiny_cnn_32_int8.tflite"
    assert main(["benchmark", str(DEFAULT), str(tiny), "--threads", "1", "--runs", "3",
                 "--video", "", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*.csv")
    big, small = list(csv.DictReader(path.open()))
    assert float(small["peak_rss_mb"]) < float(big["peak_rss_mb"]), (big, small)
    assert float(small["mb"]) > 0  # a 28 kB build is not "0.0" MB


@needs_default
def test_end_to_end_fps_is_a_median_over_repeated_passes():
    from fer_edge.bench.one import end_to_end
    from fer_edge.runtime import load_predictor

    row = end_to_end(load_predictor(DEFAULT, 1), "sample", min_seconds=0.5, min_passes=3)
    assert row["e2e_passes"] >= 3 and row["e2e_frames"] >= 10
    assert row["e2e_fps_min"] <= row["e2e_fps"] <= row["e2e_fps_max"]


@needs_default
@pytest.mark.parametrize("video, words", [("one.mp4", ["only 1 frame", "''"]),
                                           ("notes.txt", ["cannot be read as a video"]),
                                           ("folder", ["is a folder"]),
                                           ("nope.mp4", ["not found"])])
def test_video_checked_before_any_timing(tmp_path, monkeypatch, capsys, video, words):
    w = cv2.VideoWriter(str(tmp_path / "one.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25,
                        (64, 48))
    w.write(np.zeros((48, 64, 3), np.uint8))
    w.release()
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "folder").mkdir()
    before = snapshot(tmp_path)

    def timed(*args, **kwargs):
        raise AssertionError("a build was timed before the video was checked")

    monkeypatch.setattr(bench_cli, "_measure_fresh", timed)
    rc, err, _ = run_cli(["benchmark", str(DEFAULT), "--video", str(tmp_path / video),
                          "--out", str(tmp_path)], capsys)
    assert rc == 2 and err[-1].startswith("fer-edge benchmark: error: --video"), err
    for word in words:
        assert word in err[-1], err
    assert snapshot(tmp_path) == before


@needs_default
def test_default_out_is_the_current_directory_and_said(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, err, out = run_cli(["benchmark", str(DEFAULT), "--threads", "1", "--runs", "2",
                            "--video", ""], capsys)
    assert rc == 0, err
    (path,) = tmp_path.glob("*.csv")
    assert str(path) in out
    assert any(f"results go to {tmp_path}" in ln and "current directory" in ln for ln in err)
    assert not (tmp_path / "benchmarks").exists()


def test_help_shows_the_defaults_without_rst_markup(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text
    assert "default: the current directory" in text and "default: sample" in text
