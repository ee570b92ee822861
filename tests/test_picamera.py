"""The picamera2 source without the hardware: a stand-in ``picamera2`` module (injected through
sys.modules) serves the sample clip's frames in the byte order the Picamera2 manual documents
for the requested format; the demo must log exactly what it logs on the same frames read from
the video file. Uses the packaged model and the real Haar detector."""

from __future__ import annotations

import csv
import sys
import threading
import types

import cv2
import numpy as np
import pytest

from fer_edge.cli import main
from fer_edge.demo.config import DemoConfig
from fer_edge.demo.loop import run_demo
from fer_edge.demo.sources import SAMPLE_CLIP, PiCameraSource
from fer_edge.detect import build_detector
from fer_edge.runtime import default_model_path, load_predictor

N_FRAMES = 24
pytestmark = pytest.mark.skipif(default_model_path() is None, reason="no packaged model")


def _clip_frames(n: int = N_FRAMES) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        assert ok
        frames.append(f)
    return frames


class FakeCamera:
    """What picamera2.Picamera2 does, as far as PiCameraSource uses it.

    Byte order per the Picamera2 manual ("RGB888 - 24 bits per pixel, ordered [B, G, R]",
    "BGR888 - as above, but ordered [R, G, B]"). ``capture_array`` blocks until ``gate`` is
    released, so the live reader never gets ahead of the loop (a real camera would drop frames
    instead, which makes two runs incomparable).
    """

    instances: list[FakeCamera] = []
    scene: list[np.ndarray] = []  # BGR frames "in front of the lens"
    fail_after: int | None = None  # raise in capture_array after this many frames
    no_camera = False
    gated = True  # False: frames as fast as they are asked for, like a live camera

    def __init__(self):
        if FakeCamera.no_camera:
            raise IndexError("list index out of range")  # what picamera2 raises with no camera
        self.config, self.started, self.closed, self.served = None, False, False, 0
        self.gate = threading.Semaphore(1) if FakeCamera.gated else _Open()
        FakeCamera.instances.append(self)

    def create_video_configuration(self, main=None, **kwargs):
        return {"use_case": "video", "main": dict(main or {}), **kwargs}

    def configure(self, config):
        fmt = config["main"].get("format")
        if fmt not in ("RGB888", "BGR888", "XRGB8888", "XBGR8888", "YUV420"):
            raise RuntimeError(f"unsupported format {fmt}")
        self.config = config

    def start(self):
        assert self.config is not None, "configure() before start()"
        self.started = True

    def capture_array(self, name="main"):
        assert self.started and not self.closed
        while not self.gate.acquire(timeout=0.05):
            if not self.started:
                raise RuntimeError("camera stopped")
        if FakeCamera.fail_after is not None and self.served >= FakeCamera.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        w, h = self.config["main"]["size"]
        bgr = cv2.resize(self.scene[self.served % len(self.scene)], (w, h))
        self.served += 1
        fmt = self.config["main"]["format"]
        return {"RGB888": bgr, "BGR888": bgr[..., ::-1]}[fmt].copy()

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


class GatedDetector:
    """The real detector; after each detection it lets the camera deliver the next frame."""

    def __init__(self, camera_gate=None):
        self.inner, self.gate = build_detector("haar"), camera_gate

    def detect(self, frame):
        boxes = self.inner.detect(frame)
        if self.gate is None and FakeCamera.instances:
            self.gate = FakeCamera.instances[-1].gate
        if self.gate is not None:
            self.gate.release()
        return boxes


@pytest.fixture
def picamera2(monkeypatch):
    mod = types.ModuleType("picamera2")
    mod.Picamera2 = FakeCamera
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    FakeCamera.instances, FakeCamera.scene = [], _clip_frames()
    FakeCamera.fail_after, FakeCamera.no_camera, FakeCamera.gated = None, False, True
    return mod


def _log(path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        del r["timestamp"]  # video time vs wall-clock time
        del r["source"]  # the video's file name vs "picamera2"
    return rows


def _run(tmp_path, name, **source):
    cfg = DemoConfig(headless=True, log=str(tmp_path / f"{name}.csv"), max_frames=N_FRAMES,
                     detect_every=1, **source)
    stats = run_demo(cfg, predictor=load_predictor(None, 1), detector=GatedDetector())
    return stats, _log(tmp_path / f"{name}.csv")


@pytest.fixture(scope="module")
def video_log(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("video")
    stats, rows = _run(tmp, "video", video="sample")
    assert stats.frames == N_FRAMES and len(rows) >= N_FRAMES - 2  # the face in ~every frame
    return rows


def test_picamera_frames_give_the_video_log(picamera2, video_log, tmp_path):
    stats, rows = _run(tmp_path, "pi", picamera=True)
    cam = FakeCamera.instances[0]
    assert cam.config["main"] == {"size": (640, 480), "format": "RGB888"}
    assert stats.frames == N_FRAMES and stats.dropped == 0
    assert rows == video_log  # boxes, ids, every probability, labels: identical
    assert cam.closed and not cam.started  # stopped and released for the next program


def test_stand_in_tells_the_colour_orders_apart(picamera2, video_log, tmp_path, monkeypatch):
    """The check above can fail: BGR888 (R and B swapped) changes the logged probabilities."""
    monkeypatch.setattr(PiCameraSource, "FORMAT", "BGR888")
    _, rows = _run(tmp_path, "swapped", picamera=True)
    assert rows != video_log


def test_cli_picamera_log_and_summary(picamera2, tmp_path, capsys):
    FakeCamera.scene, FakeCamera.gated = FakeCamera.scene[:6], False
    rc = main(["demo", "--picamera", "--headless", "--frame-size", "320x240", "--log",
               str(tmp_path / "l.jsonl"), "--max-frames", "8"])
    assert rc == 0
    assert "8 frames" in capsys.readouterr().out
    assert FakeCamera.instances[0].config["main"]["size"] == (320, 240)
    assert (tmp_path / "l.jsonl").read_text().count("\n") >= 1


class _Open:
    def acquire(self, timeout=None):
        return True

    def release(self):
        pass


class _BrokenImport:
    """A meta-path finder: importing picamera2 fails the way it does on Raspberry Pi OS when the
    venv's numpy 2 meets apt's simplejpeg (built for numpy 1; raspberrypi/picamera2#1211)."""

    def find_spec(self, name, path=None, target=None):
        if name == "picamera2":
            raise ValueError("numpy.dtype size changed, may indicate binary incompatibility. "
                             "Expected 96 from C header, got 88 from PyObject")
        return None


@pytest.mark.parametrize("case, needle", [
    ("missing", "--picamera needs picamera2: sudo apt install python3-picamera2"),
    ("numpy_abi", "picamera2 is installed but cannot be imported (ValueError: numpy.dtype size "
                  "changed"),
    ("no_camera", "the Pi camera cannot be started (IndexError"),
    ("fails", "picamera2 stopped delivering frames (RuntimeError: Camera frontend has timed"),
])
def test_picamera_bad_cases_one_line_exit_2(picamera2, monkeypatch, tmp_path, capsys, case,
                                            needle):
    if case == "missing":
        monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as if not installed
    if case == "numpy_abi":
        monkeypatch.delitem(sys.modules, "picamera2")
        monkeypatch.setattr(sys, "meta_path", [_BrokenImport(), *sys.meta_path])
    FakeCamera.no_camera, FakeCamera.gated = case == "no_camera", False
    FakeCamera.fail_after = 3 if case == "fails" else None
    log = tmp_path / "l.csv"
    rc = main(["demo", "--picamera", "--headless", "--log", str(log), "--detect-every", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    if case == "fails":  # the frames before the failure are logged, the camera is released
        assert FakeCamera.instances[0].closed
        with open(log) as f:
            assert len(list(csv.reader(f))) >= 2
