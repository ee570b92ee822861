"""Demo on generated video (no camera): log contents, tracks, smoothing, bad input, no TF."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_spec

from fer_edge.cli import main
from fer_edge.demo.config import DemoConfig
from fer_edge.demo.loop import run_demo
from fer_edge.demo.sources import SAMPLE_CLIP
from fer_edge.runtime import default_model_path, load_predictor
from fer_edge.runtime.base import Predictor

needs_packaged = pytest.mark.skipif(default_model_path() is None, reason="no packaged model")


class NoisyPredictor(Predictor):
    """Stand-in model behind the real :class:`Predictor` (preprocessing, flip TTA): 'happy'
    with noise that makes the raw argmax flicker. Its spec has flip TTA on, as the packaged
    model's, so the demo takes its default flip path (``--flip-tta alternate``)."""

    backend = "noisy"

    def __init__(self):
        super().__init__(Path("noisy.tflite"), make_spec(tta_flip=True), 1)
        self.rng, self.calls, self.passes, self.flags = np.random.default_rng(0), 0, 0, []

    def predict(self, faces, tta_flip=None):
        assert faces.ndim == 3 and faces.dtype == np.uint8 and faces.shape[1:] == (48, 48)
        self.calls += 1
        self.flags.append(tta_flip)
        return super().predict(faces, tta_flip)

    def _run(self, x):
        self.passes += 1
        p = np.full((len(x), 7), 0.02)
        p[:, 3] = 0.5 + self.rng.normal(0, 0.1, len(x))
        p[:, 6] = 0.42 + self.rng.normal(0, 0.1, len(x))
        p = np.clip(p, 1e-3, None)
        return (p / p.sum(1, keepdims=True)).astype(np.float32), None


@pytest.fixture(scope="module")
def moving_face_video(tmp_path_factory):
    """40 frames 640x480 at 20 fps: the astronaut face crop pasted at known, moving places."""
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    ok, frame = cap.read()
    assert ok
    face = frame[30:270, 160:400].copy()  # face (216, 80, 126, 126) of the first frame + margin
    path = tmp_path_factory.mktemp("vid") / "moving.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20, (640, 480))
    for i in range(40):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        x, y = 40 + 8 * i, 100 + int(30 * np.sin(i / 6))
        canvas[y:y + 240, x:x + 240] = face
        w.write(canvas)
    w.release()
    return path


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_log_rows_tracks_and_smoothing(moving_face_video, tmp_path):
    log = tmp_path / "faces.csv"
    cfg = DemoConfig(video=str(moving_face_video), headless=True, log=str(log),
                     save=str(tmp_path / "out.avi"), detect_every=2, ema=0.3)
    pred = NoisyPredictor()
    stats = run_demo(cfg, predictor=pred)
    assert stats.frames == 40
    # the default flip path: both passes on the face's first classification, one pass after
    assert pred.flags[0] is True and set(pred.flags[1:]) == {False}
    assert pred.passes == pred.calls + 1
    rows = _rows(log)
    assert len(rows) >= 34  # the face is found in (nearly) every frame
    assert stats.rows_logged == len(rows)
    frames = [int(r["frame"]) for r in rows]
    ts = [float(r["timestamp"]) for r in rows]
    assert frames == sorted(frames) and ts == sorted(ts)
    assert abs(ts[-1] - frames[-1] / 20) < 1e-3  # video time
    assert {r["face_id"] for r in rows} == {"1"}  # one face, one stable id
    p = np.array([[float(r[f"p_{lab}"]) for lab in make_spec().labels] for r in rows])
    assert np.all((p >= 0) & (p <= 1)) and np.allclose(p.sum(1), 1, atol=1e-3)
    flips = lambda seq: sum(a != b for a, b in zip(seq, seq[1:]))  # noqa: E731
    assert flips([r["label"] for r in rows]) < flips([r["raw_label"] for r in rows])
    x = [int(r["x"]) for r in rows]
    assert x[-1] > x[0] + 150  # boxes follow the moving face
    saved = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(saved.get(cv2.CAP_PROP_FRAME_COUNT)) == 40


def test_jsonl_log_and_classify_every(moving_face_video, tmp_path):
    import json

    pred = NoisyPredictor()
    stats = run_demo(DemoConfig(video=str(moving_face_video), headless=True,
                                log=str(tmp_path / "f.jsonl"), classify_every=4,
                                max_frames=20), predictor=pred)
    assert stats.frames == 20 and pred.calls <= 6
    rows = [json.loads(ln) for ln in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert rows and {"frame", "timestamp", "face_id", "p_happy", "label"} <= set(rows[0])


class ScriptedDetector:
    """Finds one face at a fixed box on the first ``until`` calls, none after."""

    name = "scripted"

    def __init__(self, until: int):
        self.until, self.calls = until, 0

    def detect_faces(self, frame):
        from fer_edge.detect import Detection

        self.calls += 1
        return [Detection((216.0, 80.0, 126.0, 126.0))] if self.calls <= self.until else []


def test_a_face_kept_alive_at_its_last_box_is_shown_but_not_classified(tmp_path):
    log = tmp_path / "faces.csv"
    pred = NoisyPredictor()
    stats = run_demo(DemoConfig(video="sample", headless=True, log=str(log), detect_every=1,
                                classify_every=1, keep_alive=2, max_frames=10),
                     predictor=pred, detector=ScriptedDetector(until=5))
    assert stats.frames == 10
    frames = [int(r["frame"]) for r in _rows(log)]
    assert frames == list(range(7))  # found on frames 0-4, shown 2 rounds more
    assert pred.calls == 5  # classified only while the detector still finds it


def test_image_folder_source(tmp_path):
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    for k in range(2):
        ok, frame = cap.read()
        cv2.imwrite(str(tmp_path / f"{k}.png"), frame)
    stats = run_demo(DemoConfig(image=str(tmp_path), headless=True,
                                log=str(tmp_path / "l.csv")), predictor=NoisyPredictor())
    assert stats.frames == 2 and len(_rows(tmp_path / "l.csv")) == 2


@needs_packaged
@pytest.mark.parametrize("flag, passes", [("model", 2), ("on", 2), ("off", 1)])
def test_flip_tta_switch(flag, passes, tmp_path):
    """--flip-tta off halves the classifier passes (the packaged model's spec has it on)."""
    pred = load_predictor(None, 1)
    calls = []
    real = pred.predict_inputs
    pred.predict_inputs = lambda x: calls.append(len(x)) or real(x)
    stats = run_demo(DemoConfig(video="sample", headless=True, max_frames=4, classify_every=1,
                                flip_tta=flag), predictor=pred)
    assert stats.frames == 4 and calls and len(calls) == passes * len(stats.classify_ms)


@needs_packaged
def test_flip_tta_alternate_spreads_the_two_passes_over_rounds():
    """The default (alternate): both passes on a face's first classification, then one pass
    per round, the face and its mirror in turn."""
    pred = load_predictor(None, 1)
    seen = []
    real = pred.predict_inputs
    pred.predict_inputs = lambda x: seen.append(x.copy()) or real(x)
    stats = run_demo(DemoConfig(video="sample", headless=True, max_frames=5, classify_every=1,
                                detect_every=1), predictor=pred)
    assert DemoConfig().flip_tta == "alternate"
    rounds = len(stats.classify_ms)
    assert rounds == 5 and len(seen) == rounds + 1
    # pass 0/1: face and mirror of round 0; then round 1 mirrored, round 2 plain, ...
    assert np.array_equal(seen[1], seen[0][:, :, ::-1])
    assert all(len(x) == 1 for x in seen)


def test_flip_tta_bad_value_from_a_config_file():
    from fer_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="--flip-tta 'maybe': use alternate, model, on, off"):
        DemoConfig(video="sample", flip_tta="maybe").validate()


@pytest.mark.parametrize("args, needle", [
    (["--camera", "97"], "camera 97 cannot be opened"),
    (["--video", "/nonexistent/clip.mp4"], "video file not found"),
    (["--video", "sample", "--model", "/nonexistent/m.tflite"], "model file not found"),
    (["--video", "sample", "--camera", "0"], "choose one source"),
])
def test_bad_input_one_line_exit_2(args, needle, capsys):
    assert main(["demo", "--headless", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("fer-edge demo: error:")


def test_unreadable_video(tmp_path, capsys):
    bad = tmp_path / "x.mp4"
    bad.write_text("not a video")
    assert main(["demo", "--video", str(bad), "--headless"]) == 2
    assert "cannot read this video" in capsys.readouterr().err


@pytest.mark.tf
def test_demo_cli_without_tensorflow(tiny_exported, tmp_path):
    model = tiny_exported / "export" / "fer_tiny_cnn_32_int8.tflite"
    code = ("import sys; from fer_edge.cli import main; "
            f"rc = main(['demo', '--video', 'sample', '--headless', '--model', r'{model}', "
            f"'--log', r'{tmp_path / 'l.csv'}', '--max-frames', '10']); "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "print('HEAVY', heavy); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-800:]
    assert "HEAVY []" in r.stdout and "10 frames" in r.stdout
    assert len(_rows(tmp_path / "l.csv")) >= 8


@pytest.mark.tf
def test_ctrl_c_closes_cleanly_and_flushes(tiny_exported, tmp_path):
    model = tiny_exported / "export" / "fer_tiny_cnn_32_fp32.onnx"
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    ok, frame = cap.read()
    cv2.imwrite(str(tmp_path / "face.jpg"), frame)
    for k in range(4000):  # long enough (~50 s at 80 FPS) to still be running when interrupted
        (imgs / f"{k:04d}.jpg").symlink_to(tmp_path / "face.jpg")
    log = tmp_path / "l.csv"
    p = subprocess.Popen([sys.executable, "-m", "fer_edge", "demo", "--image", str(imgs),
                          "--headless", "--model", str(model), "--log", str(log),
                          "--detect-width", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"demo still running 60 s after Ctrl-C; stdout {out[-300:]!r} "
                    f"stderr {err[-500:]!r}")
    assert p.returncode == 0, err[-500:]
    assert "stopped by Ctrl-C" in out and "Traceback" not in err
    rows = _rows(log)
    assert 2 <= len(rows) < 4000


def test_live_reader_drops_stale_frames_instead_of_queueing():
    from fer_edge.demo.sources import _LatestFrame

    counter = iter(range(10_000))

    def read():  # a fast camera: a new frame every ~1 ms
        time.sleep(0.001)
        k = next(counter, None)
        return None if k is None else np.full((2, 2, 3), k, np.int32)

    grab = _LatestFrame(read)
    got = []
    for _ in range(5):  # a slow loop: 30 ms per frame
        frame, _ = grab.latest()
        got.append(int(frame[0, 0, 0]))
        time.sleep(0.03)
    grab.stopped = True
    assert grab.dropped > 20  # frames the loop never saw were dropped, not queued
    assert all(b - a > 5 for a, b in zip(got, got[1:]))  # each read is the newest frame
