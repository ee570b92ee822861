"""The demo's --log (issue 34): a log another run holds is refused, nothing is written before
the first row, `--log -` streams JSON Lines to stdout, the suffix's case does not matter."""

from __future__ import annotations

import csv
import fcntl
import json
import os

import pytest
from cli_sweep import assert_refused, run_cli

from fer_edge.demo.config import DemoConfig
from fer_edge.demo.logs import FaceLog
from fer_edge.demo.loop import run_demo
from fer_edge.demo.tracking import Track
from fer_edge.errors import OutputError
from fer_edge.runtime import default_model_path
from fer_edge.spec import ModelSpec

needs_default = pytest.mark.skipif(default_model_path() is None,
                                   reason="this checkout has no packaged model")


class NoFaces:
    name = "scripted"

    def detect_faces(self, frame):
        return []


class Fixed:
    """The sample clip's face, always."""

    def __init__(self):
        self.spec = ModelSpec()

    def predict(self, faces, tta_flip=None):
        import numpy as np

        out = np.full((len(faces), 7), 0.05, np.float32)
        out[:, 3] = 0.7
        return out


def _track():
    import numpy as np

    t = Track(1, (10, 20, 30, 30), probs=np.full(7, 1 / 7, np.float32),
              raw=np.full(7, 1 / 7, np.float32), label=3)
    return t


def test_log_held_by_another_process_is_refused_even_with_force(tmp_path, capsys):
    ws = tmp_path / "ws"
    ws.mkdir()
    log = ws / "faces.csv"
    log.write_text("frame,timestamp\n0,0.0\n")  # rows of the run that holds it
    fd = os.open(log, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running demo holds
    try:
        assert_refused(["demo", "--video", "sample", "--headless", "--log", log, "--force"],
                       capsys, ws, "faces.csv", "another process is writing", "another name")
    finally:
        os.close(fd)


def test_log_that_appears_or_gets_locked_mid_start_is_not_truncated(tmp_path):
    """Two runs that both passed the start check: the second one's first row finds the file
    (created by the first run) and stops instead of truncating it; with --force it finds the
    lock held."""
    path = tmp_path / "faces.csv"
    first = FaceLog(path, ModelSpec().labels)
    first.write(0, 0.0, [_track()], "a.png")
    second = FaceLog(path, ModelSpec().labels)
    with pytest.raises(OutputError, match="appeared while this run started"):
        second.write(0, 0.0, [_track()], "b.png")
    forced = FaceLog(path, ModelSpec().labels, force=True)
    with pytest.raises(OutputError, match="another process is writing"):
        forced.write(0, 0.0, [_track()], "b.png")
    first.write(1, 0.1, [_track()], "a.png")
    first.close()
    rows = list(csv.DictReader(path.open()))
    assert [r["source"] for r in rows] == ["a.png", "a.png"]
    # closed: the lock is released and a --force run may replace it
    again = FaceLog(path, ModelSpec().labels, force=True)
    again.write(0, 0.0, [_track()], "c.png")
    again.close()
    assert [r["source"] for r in csv.DictReader(path.open())] == ["c.png"]


def test_no_face_no_log_file(tmp_path):
    log = tmp_path / "faces.csv"
    stats = run_demo(DemoConfig(video="sample", headless=True, log=str(log), max_frames=5),
                     predictor=Fixed(), detector=NoFaces())
    assert stats.frames == 5 and stats.rows_logged == 0
    assert not log.exists()  # no header-only file that would block the rerun


def test_log_source_column_for_video(tmp_path):
    log = tmp_path / "f.jsonl"
    run_demo(DemoConfig(video="sample", headless=True, log=str(log), max_frames=3),
             predictor=Fixed())
    rows = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert rows and {r["source"] for r in rows} == {"sample_astronaut.mp4"}


@needs_default
def test_log_dash_streams_jsonl_to_stdout_and_the_rest_to_stderr(tmp_path, capsys):
    rc, err, out = run_cli(["demo", "--video", "sample", "--headless", "--log", "-",
                            "--max-frames", "6"], capsys)
    assert rc == 0, err
    rows = [json.loads(ln) for ln in out.splitlines()]  # every stdout line is a JSON row
    assert len(rows) == 6 and {"frame", "source", "face_id", "label", "p_happy"} <= set(rows[0])
    assert any("6 frames" in ln for ln in err) and any(ln.startswith("faces:") for ln in err)
    assert not list(tmp_path.iterdir())  # no file named "-" anywhere we look
    assert not os.path.exists("-")


@needs_default
@pytest.mark.parametrize("name", ["faces.CSV", "faces.Jsonl"])
def test_log_suffix_any_case(tmp_path, capsys, name):
    log = tmp_path / name
    rc, err, _ = run_cli(["demo", "--video", "sample", "--headless", "--log", log,
                          "--max-frames", "3"], capsys)
    assert rc == 0, err
    text = log.read_text()
    if name.lower().endswith(".csv"):
        assert text.startswith("frame,timestamp,source")
    else:
        assert json.loads(text.splitlines()[0])["frame"] == 0


def test_log_bad_suffix_names_the_choices(tmp_path, capsys):
    assert_refused(["demo", "--video", "sample", "--headless", "--log", tmp_path / "f.txt"],
                   capsys, tmp_path, "f.txt", ".csv or .jsonl", "- for JSON Lines")


@needs_default
def test_log_dash_reader_that_stops_reading_ends_the_run_in_one_line(tmp_path):
    import subprocess
    import sys

    import cv2

    from fer_edge.demo.sources import SAMPLE_CLIP

    ok, frame = cv2.VideoCapture(str(SAMPLE_CLIP)).read()
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(tmp_path / "face.png"), frame)
    for k in range(400):  # 400 rows of ~400 bytes: more than a pipe buffer holds
        (photos / f"{k:03d}.png").symlink_to(tmp_path / "face.png")
    work = tmp_path / "cwd"
    work.mkdir()
    demo = subprocess.Popen([sys.executable, "-m", "fer_edge", "demo", "--image", str(photos),
                             "--headless", "--log", "-", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=work)
    first = demo.stdout.readline()  # a reader that wants one event, then goes away
    demo.stdout.close()
    err = demo.stderr.read()
    assert demo.wait(timeout=60) == 2
    assert json.loads(first)["frame"] == 0
    ours = [ln for ln in err.splitlines() if ln.startswith("fer-edge")]
    assert ours == [err.strip().splitlines()[-1]] and "broken pipe" in ours[0], err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert not list(work.iterdir())


def test_summary_says_when_the_log_got_no_row(tmp_path):
    from fer_edge.demo.report import summary_lines

    log = tmp_path / "faces.csv"
    stats = run_demo(DemoConfig(video="sample", headless=True, log=str(log), max_frames=3),
                     predictor=Fixed(), detector=NoFaces())
    lines = summary_lines(stats, log=str(log))
    assert lines[1] == "faces: none found on 3 frames"
    assert lines[2].startswith(f"--log {log}: no face was classified, so nothing was written")
