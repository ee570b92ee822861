"""A demo run end to end (issue 34): SIGTERM closes --save like Ctrl-C, the summary says what
was seen, --threads reaches every stage."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from cli_sweep import run_cli
from conftest import make_spec

from fer_edge.demo.config import DemoConfig
from fer_edge.demo.loop import run_demo
from fer_edge.demo.sources import SAMPLE_CLIP
from fer_edge.runtime import default_model_path

needs_default = pytest.mark.skipif(default_model_path() is None,
                                   reason="this checkout has no packaged model")


@needs_default
@pytest.mark.parametrize("sig, said", [(signal.SIGTERM, "stopped by SIGTERM"),
                                       (signal.SIGINT, "stopped by Ctrl-C")])
def test_signal_during_save_leaves_a_playable_video_and_the_summary(tmp_path, sig, said):
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    ok, frame = cap.read()
    cv2.imwrite(str(tmp_path / "face.jpg"), frame)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for k in range(3000):  # far longer than the test waits
        (imgs / f"{k:04d}.jpg").symlink_to(tmp_path / "face.jpg")
    out = tmp_path / "out.mp4"
    p = subprocess.Popen([sys.executable, "-m", "fer_edge", "demo", "--image", str(imgs),
                          "--headless", "--save", str(out), "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 100_000):
        time.sleep(0.2)
    p.send_signal(sig)
    try:
        stdout, stderr = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        stdout, stderr = p.communicate()
        pytest.fail(f"demo still running 60 s after the signal: {stderr[-500:]!r}")
    assert p.returncode == 0, stderr[-500:]
    assert said in stdout and "faces: on" in stdout and "Traceback" not in stderr
    saved = cv2.VideoCapture(str(out))  # an unfinalised mp4 has no moov atom: 0 frames
    n = int(saved.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = saved.read()
    assert ok and first.shape == frame.shape and 2 <= n < 3000, n


@needs_default
def test_first_readme_command_says_what_it_saw(capsys):
    rc, err, out = run_cli(["demo", "--video", "sample", "--headless"], capsys)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert "60 frames" in lines[0] and "FPS" in lines[0]
    assert lines[1].startswith("faces: on 60 of 60 frames (at most 1 at once)")
    assert "happy" in lines[1]  # the astronaut smiles


def test_summary_counts_labels_per_face_frame():
    from fer_edge.demo.report import FaceTally
    from fer_edge.demo.tracking import Track

    labels = make_spec().labels
    p = np.full(7, 1 / 7, np.float32)
    tally = FaceTally()
    tally.note([Track(1, (0, 0, 9, 9), probs=p, label=3), Track(2, (20, 0, 9, 9))], labels)
    tally.note([Track(1, (0, 0, 9, 9), probs=p, label=6), Track(2, (20, 0, 9, 9), probs=p,
                                                                 label=3)], labels)
    tally.note([], labels)
    assert tally.line(3) == ("faces: on 2 of 3 frames (at most 2 at once); shown labels "
                             "(face-frames): happy 2, neutral 1")
    assert FaceTally().line(5) == "faces: none found on 5 frames"


def test_threads_reach_detector_classifier_and_opencv(monkeypatch):
    import fer_edge.detect
    import fer_edge.runtime

    seen = {}
    before = cv2.getNumThreads()

    class Pred:
        spec = make_spec()

        def predict(self, faces, tta_flip=None):
            return np.full((len(faces), 7), 1 / 7, np.float32)

    def load_predictor(path, threads):
        seen["classifier"] = threads
        return Pred()

    real_build = fer_edge.detect.build_detector

    def build_detector(*args, **kw):
        if "num_threads" not in kw:  # the inner call for the first pass of "+refine"
            return real_build(*args, **kw)
        seen["detector"] = kw["num_threads"]
        det = real_build(*args, **kw)
        seen["interpreters"] = {det.refiner.num_threads, det.first.inner.num_threads}
        real_detect = det.detect_faces

        def detect_faces(frame):
            seen["opencv"] = cv2.getNumThreads()
            return real_detect(frame)

        det.detect_faces = detect_faces
        return det

    monkeypatch.setattr(fer_edge.runtime, "load_predictor", load_predictor)
    monkeypatch.setattr(fer_edge.detect, "build_detector", build_detector)
    run_demo(DemoConfig(video="sample", headless=True, threads=1, max_frames=2))
    assert seen == {"classifier": 1, "detector": 1, "interpreters": {1}, "opencv": 1}
    assert cv2.getNumThreads() == before  # restored after the run
    run_demo(DemoConfig(video="sample", headless=True, threads=2, max_frames=2))
    assert seen["classifier"] == seen["detector"] == seen["opencv"] == 2
    assert seen["interpreters"] == {2}


def test_threads_reach_the_video_decoder():
    from fer_edge.demo.sources import VideoSource

    src = VideoSource("sample", threads=1)  # FFmpeg's pool is not cv2.setNumThreads's
    try:
        assert src.cap.get(cv2.CAP_PROP_N_THREADS) == 1
        assert sum(1 for _ in src) == 60
    finally:
        src.close()


def test_help_says_each_default_once(capsys):
    from fer_edge.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: -1)" not in text.split("--camera N", 1)[1].split("--picamera")[0]
    assert "(default: none)" in text
    assert "(default: refuse) (default: False)" not in text and "(default: refuse)" in text
    assert "--detect-tiles S" in text and "--image S [S ...]" in text
