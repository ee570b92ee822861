"""Frame sources: camera (latest frame only), Pi camera, video file, images. Light tier.

Every source yields ``(frame_bgr, timestamp_s)`` with frame (H, W, 3) uint8 **BGR**. A live
camera is read in a background thread that keeps only the newest frame, so a slow loop drops
stale frames instead of queueing them (``dropped`` counts them); files yield every frame with
their own timestamps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from fer_edge.errors import ConfigError, SourceError

log = logging.getLogger(__name__)
_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
ASSETS = Path(__file__).resolve().parents[1] / "assets"
SAMPLE_CLIP = ASSETS / "sample_astronaut.mp4"


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480); anything else (``banana``, ``0x480``) is a ConfigError."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        w = h = 0
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise ConfigError(f"--frame-size {text!r}: use WxH in pixels, e.g. 640x480")
    return w, h


def check_not_folder(flag: str, path: str) -> None:
    """Refuse a folder given where a file is wanted (``--model``, ``--video``), saying what the
    folder looks like: a training run (its builds are in ``export/``), a folder of builds, or a
    folder of photos (``--image``).

    Raises:
        SourceError: ``path`` is a folder.
    """
    p = Path(path) if path else None
    if p is None or not p.is_dir():
        return
    builds = _builds(p)
    if (p / "export").is_dir() or (p / "spec.json").is_file():
        made = _builds(p / "export")
        build = p / "export" / made[0] if made else f"{p / 'export'}/<name>.tflite"
        what = "" if flag == "--model" else "it is a training run, not a video; "
        fix = (f"{what}a run's builds are in its export/ folder: --model {build}" +
               ("" if made else f" (make them with fer-edge convert {p})"))
    elif builds:
        fix = f"give one of its builds, e.g. --model {p / builds[0]}"
    elif any(q.suffix.lower() in _IMAGE_EXT for q in p.iterdir()):
        fix = f"for a folder of photos use --image {p}"
    else:
        fix = "give a .tflite/.onnx build" if flag == "--model" else "give a video file"
    raise SourceError(f"{flag} {p}: is a folder, not a file; {fix}")


def _open_video(path: Path, threads: int) -> cv2.VideoCapture:
    """OpenCV's capture of a video file; with ``threads`` > 0 FFmpeg decodes on that many
    threads (its default is one per core, which ``cv2.setNumThreads`` does not limit)."""
    if threads and hasattr(cv2, "CAP_PROP_N_THREADS"):
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
        if cap.isOpened():
            return cap
        cap.release()
    return cv2.VideoCapture(str(path))


def _builds(folder: Path) -> list[str]:
    """Names of the .tflite/.onnx files of a folder, int8 TFLite first (the demo's usual)."""
    if not folder.is_dir():
        return []
    names = [q.name for q in folder.iterdir() if q.suffix.lower() in (".tflite", ".onnx")]
    return sorted(names, key=lambda n: (not n.endswith("int8.tflite"), n))


class VideoSource:
    """Every frame of a video file; timestamps are video time (s).

    Args:
        path: the file, or "sample" for the packaged clip.
        threads: decoder threads (FFmpeg's own pool; 0 = FFmpeg's default, one per core).
    """

    #: frames are consecutive: the demo tracks and smooths faces across them
    independent = False
    skipped = 0

    def __init__(self, path: str, threads: int = 0):
        p = SAMPLE_CLIP if path == "sample" else Path(path)
        check_not_folder("--video", str(p))
        if not p.is_file():
            raise SourceError(f"{p}: video file not found")
        self.cap = _open_video(p, threads)
        ok, first = self.cap.read() if self.cap.isOpened() else (False, None)
        if not ok:
            raise SourceError(f"{p}: cannot read this video (unsupported codec or not a video); "
                              "convert it to mp4 (H.264/mp4v) or MJPG avi")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self._first, self.dropped, self.live = first, 0, False
        self.name = str(p)
        self.current = p.name  # the log's source column

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        i, frame = 0, self._first
        while frame is not None:
            yield frame, i / self.fps
            i += 1
            ok, frame = self.cap.read()
            frame = frame if ok else None

    def close(self) -> None:
        self.cap.release()


class ImageSource:
    """Photos: image files and/or every image of folders (each folder sorted), in the order
    given; timestamp = index among the photos read.

    Photos are independent (``independent``): the demo detects and classifies each one on its
    own. A file that cannot be decoded is skipped with a warning and counted (``skipped``);
    when nothing at all could be read, iteration ends with a :class:`SourceError`. ``current``
    is the file name of the photo last yielded (the log's source column).

    Args:
        paths: one path or several (files or folders).
    """

    independent = True

    def __init__(self, paths):
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        files = []
        for path in map(Path, paths):
            if path.is_dir():
                files += sorted(f for f in path.iterdir() if f.suffix.lower() in _IMAGE_EXT)
            elif path.is_file():
                files.append(path)
            else:
                raise SourceError(f"--image {path}: no image found (no such file or folder); "
                                  "check the path")
        if not files:
            raise SourceError(f"--image {' '.join(map(str, paths))}: no image found (no "
                              f"{'/'.join(sorted(_IMAGE_EXT))} file); check the folder")
        if len(files) == 1 and cv2.imread(str(files[0]), cv2.IMREAD_REDUCED_COLOR_8) is None:
            raise SourceError(f"{files[0]}: cannot be read as an image (corrupt, or not a "
                              "format OpenCV decodes); give a .jpg or .png")
        self.files, self.dropped, self.live, self.fps = files, 0, False, 0.0
        self.name, self.current, self.skipped = " ".join(map(str, paths)), "", 0

    def __iter__(self):
        k = 0
        for f in self.files:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                self.skipped += 1
                log.warning("skipped %s: cannot be read as an image", f)
                continue
            self.current = f.name
            yield img, float(k)
            k += 1
        if k == 0:
            raise SourceError(f"none of the {len(self.files)} images could be read (corrupt, "
                              "or not a format OpenCV decodes); give .jpg or .png files")

    def close(self) -> None:
        pass


class _LatestFrame:
    """Background reader keeping only the newest frame of a live source.

    ``read()`` returns a frame, or None when the source has ended; an exception it raises
    (a camera unplugged or failing) stops the reader and is kept in ``error``.
    """

    def __init__(self, read):
        self._read, self._lock = read, threading.Lock()
        self._frame, self._t, self._seq, self._taken = None, 0.0, 0, 0
        self.dropped, self.stopped, self.error = 0, False, None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self.stopped:
            try:
                frame = self._read()
            except Exception as exc:  # reported by the consumer, not lost
                if not self.stopped:
                    self.error = f"{type(exc).__name__}: {exc}"
                self.stopped = True
                break
            if frame is None:
                self.stopped = True
                break
            with self._lock:
                if self._frame is not None and self._seq != self._taken:
                    self.dropped += 1  # the loop never saw the previous frame
                self._frame, self._t, self._seq = frame, time.monotonic(), self._seq + 1

    def latest(self, timeout: float = 5.0):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            with self._lock:
                if self._frame is not None and self._seq != self._taken:
                    self._taken = self._seq
                    return self._frame, self._t
            if self.stopped:
                return None
            time.sleep(0.001)
        return None

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the reader to stop and wait (up to ``timeout`` s) for its current read."""
        self.stopped = True
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


class CameraSource:
    """OpenCV camera (V4L2 / DirectShow / AVFoundation); timestamps: seconds since the first
    frame, by the monotonic clock (a Pi without a real-time clock has its wall clock stepped by
    NTP after boot)."""

    def __init__(self, index: int, size: tuple[int, int]):
        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            raise SourceError(f"camera {index} cannot be opened; check the index (try 0 or 1), "
                              "that no other program uses it, and camera permissions. On a "
                              "Raspberry Pi camera module use --picamera")
        self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        self.live, self.fps, self.name = True, 0.0, f"camera {index}"
        self.current, self.independent, self.skipped = self.name, False, 0

        def read():
            ok, frame = self.cap.read()
            return frame if ok else None

        self._grab = _LatestFrame(read)

    @property
    def dropped(self) -> int:
        return self._grab.dropped

    def __iter__(self):
        t0 = None
        while True:
            got = self._grab.latest()
            if got is None:
                if self._grab.error:
                    raise SourceError(f"{self.name} stopped delivering frames "
                                      f"({self._grab.error}); check its cable and power")
                return
            t0 = got[1] if t0 is None else t0
            yield got[0], got[1] - t0

    def close(self) -> None:
        self._grab.stop()
        self.cap.release()


class PiCameraSource(CameraSource):
    """Raspberry Pi camera module through picamera2 (V4L2 capture does not work with it).

    Frames are requested as picamera2's ``"RGB888"``, which despite its name (libcamera/DRM
    naming) is ordered [B, G, R] in memory: the BGR frames OpenCV and the rest of the demo
    expect. (``"BGR888"`` would give R and B swapped.)
    """

    FORMAT = "RGB888"

    def __init__(self, size: tuple[int, int]):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError("--picamera needs picamera2: sudo apt install python3-picamera2 "
                              "(and create the venv with --system-site-packages)") from None
        except Exception as exc:  # apt's simplejpeg is built for numpy 1, the venv has numpy 2
            first = (str(exc).splitlines() or [""])[0]
            raise SourceError(f"picamera2 is installed but cannot be imported "
                              f"({type(exc).__name__}: {first}); with numpy 2 in the venv, "
                              "install a matching simplejpeg into it: .venv/bin/pip install "
                              "simplejpeg") from None
        self.cam = None
        try:
            self.cam = Picamera2()
            self.cam.configure(self.cam.create_video_configuration(
                main={"size": tuple(size), "format": self.FORMAT}))
            self.cam.start()
        except Exception as exc:  # picamera2 raises IndexError, RuntimeError, ...
            self._release()
            raise SourceError(f"the Pi camera cannot be started ({type(exc).__name__}: {exc}); "
                              "check the ribbon cable, that `rpicam-hello --list-cameras` "
                              "lists it and that no other program uses it") from None
        self.live, self.fps, self.name = True, 0.0, "picamera2"
        self.current, self.independent, self.skipped = self.name, False, 0
        self._grab = _LatestFrame(self._read)

    def _read(self) -> np.ndarray:
        frame = self.cam.capture_array("main")
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise SourceError(f"picamera2 returned a {frame.dtype} array of shape "
                              f"{frame.shape}, not (H, W, 3) uint8 {self.FORMAT}")
        return frame

    def _release(self) -> None:
        if self.cam is None:
            return
        for step in ("stop", "close"):  # close() frees the camera for the next program
            try:
                getattr(self.cam, step)()
            except Exception:  # best effort while shutting down
                pass
        self.cam = None

    def close(self) -> None:
        self._grab.stop()
        self._release()


def open_source(cfg) -> VideoSource | ImageSource | CameraSource:
    """The source selected by a :class:`~fer_edge.demo.config.DemoConfig`."""
    if cfg.video:
        return VideoSource(cfg.video, cfg.threads)
    if cfg.images:
        return ImageSource(cfg.images)
    size = parse_size(cfg.frame_size)
    if cfg.picamera:
        return PiCameraSource(size)
    return CameraSource(cfg.camera, size)
