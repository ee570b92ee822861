"""``fer-edge benchmark`` writes one CSV row per build and thread count (no timing asserts)."""

from __future__ import annotations

import csv

import pytest

from fer_edge.cli import main


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
