"""``DemoConfig``: one config object for ``fer-edge demo``. Light tier."""

from __future__ import annotations

from dataclasses import dataclass

from fer_edge.config import opt
from fer_edge.errors import ConfigError

FLIP_TTA = ("model", "on", "off")


@dataclass(frozen=True)
class DemoConfig:
    """``fer-edge demo``: live emotion recognition on camera, video or images."""

    SECTION = "demo"

    model: str = opt("", ".tflite/.onnx build; default the packaged model")
    camera: int = opt(-1, "camera index (OpenCV capture; picamera2 on a Pi with --picamera)")
    picamera: bool = opt(False, "use the Raspberry Pi camera module through picamera2")
    video: str = opt("", "video file, or 'sample' for the packaged sample clip")
    image: str = opt("", "an image file or a folder of images")
    frame_size: str = opt("640x480", "camera frame size WxH")
    headless: bool = opt(False, "no window (automatic when OpenCV has no GUI)")
    save: str = opt("", "write the annotated video here (.mp4/.avi)")
    log: str = opt("", "write one row per face per frame here (.csv or .jsonl)")
    max_frames: int = opt(0, "stop after N frames (0 = until the source ends / q / Ctrl-C)")
    threads: int = opt(0, "classifier threads (0 = all cores)")
    flip_tta: str = opt("model", "classify face + mirror image (2 passes per face): model (as "
                        "the model's spec says), on, off", choices=FLIP_TTA)
    detector: str = opt("haar", "face detector: haar, or a path to a YuNet .onnx")
    detect_width: int = opt(320, "detect on the frame shrunk to this width (0 = full size)")
    detect_every: int = opt(3, "run the detector every Nth frame; tracks carry boxes between")
    classify_every: int = opt(2, "classify every Nth frame; smoothed labels carry between")
    max_faces: int = opt(4, "classify at most this many (largest) faces")
    ema: float = opt(0.35, "weight of the newest probabilities in the moving average (1 = off)")
    hysteresis: float = opt(0.08, "a new label must beat the shown one by this probability")
    show_fps: bool = opt(True, "draw FPS and per-stage latency")

    def validate(self) -> None:
        given = [bool(self.video), bool(self.image), self.camera >= 0 or self.picamera]
        if sum(given) != 1:
            raise ConfigError("choose one source: --camera N, --video FILE (or sample) or "
                              "--image FILE|DIR")
        if not 0 < self.ema <= 1:
            raise ConfigError("--ema must be in (0, 1]")
        if self.detect_every < 1 or self.classify_every < 1 or self.max_faces < 1:
            raise ConfigError("--detect-every, --classify-every and --max-faces must be >= 1")
        if self.flip_tta not in FLIP_TTA:
            raise ConfigError(f"--flip-tta {self.flip_tta!r}: use {', '.join(FLIP_TTA)}")
        if self.log and not self.log.endswith((".csv", ".jsonl")):
            raise ConfigError(f"--log {self.log}: use a .csv or .jsonl file name")
