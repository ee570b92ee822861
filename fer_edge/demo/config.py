"""``DemoConfig``: one config object for ``fer-edge demo``. Light tier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer_edge.config import check_config, opt
from fer_edge.demo.tracking import EMA, HYSTERESIS, KEEP_ALIVE
from fer_edge.detect.defaults import (
    DEFAULT_SCORE,
    DEMO_TILES,
    DETECT_WIDTH,
    DETECTOR,
    DETECTORS,
    VIDEO_REFINE_REUSE,
)
from fer_edge.errors import ConfigError
from fer_edge.options import frame_size_opt, model_opt, threads_opt

FLIP_TTA = ("alternate", "model", "on", "off")


@dataclass(frozen=True)
class DemoConfig:
    """``fer-edge demo``: live emotion recognition on camera, video or images."""

    SECTION = "demo"

    model: str = model_opt()
    profile: str = opt("", "personal profile from `fer-edge enroll`, made with this model: "
                       "personalises every face in view (default: none)")
    camera: int = opt(-1, "camera index, 0 = the first camera (OpenCV capture; picamera2 on a "
                      "Pi with --picamera) (default: none)", ge=-1)
    picamera: bool = opt(False, "use the Raspberry Pi camera module through picamera2")
    video: str = opt("", "video file, or 'sample' for the packaged sample clip")
    image: str = opt("", "image files and/or folders of images (a shell glob works); each "
                     "photo is detected and classified on its own: no tracking or smoothing "
                     "across photos", many=True)
    frame_size: str = frame_size_opt()
    headless: bool = opt(False, "no window (automatic when OpenCV has no GUI)")
    save: str = opt("", "write the annotated video here (.mp4/.avi)")
    log: str = opt("", "write one row per face per frame here (.csv or .jsonl; '-' streams "
                   "JSON Lines to standard output, the summary then goes to standard error)")
    force: bool = opt(False, "replace an existing --log / --save file (default: refuse)")
    max_frames: int = opt(0, "stop after N frames (0 = until the source ends / q / Ctrl-C)")
    threads: int = threads_opt("threads for every stage: the classifier's runtime, BlazeFace's "
                               "LiteRT interpreters and OpenCV (0 = each one's default: "
                               "classifier all cores, detector 1, OpenCV all cores)")
    flip_tta: str = opt("alternate", "flip test-time augmentation (face + mirror image): "
                        "alternate (when the model's spec asks for it: both passes on a "
                        "face's first classification, then one pass per round, face and "
                        "mirror in turn, averaged by --ema), model (both passes every round "
                        "when the spec asks for it), on, off", choices=FLIP_TTA)
    detector: str = opt(DETECTOR, "face detector: auto (= blazeface-full+refine), blazeface-full, "
                        "blazeface-short (faster, faces within ~2 m), haar, or a path to a "
                        "YuNet .onnx; a name + '+refine' adds a second, upright BlazeFace "
                        "pass on each face (truer eye line and box)")
    face_threshold: float = opt(DEFAULT_SCORE, "minimum face score, in (0, 1) (BlazeFace, "
                                "YuNet; Haar has none)")
    min_face: int = opt(-1, "ignore faces narrower than this many frame pixels; -1 = the "
                        "detector's default (Haar 64, others 0)", ge=-1)
    align: bool = opt(True, "rotate each face so the eyes are level before classifying "
                      "(detectors with eye keypoints)")
    detect_width: int = opt(DETECT_WIDTH, "Haar/YuNet: detect on the frame shrunk to this "
                            "width (0 = full size); BlazeFace letterboxes to its own input")
    detect_tiles: str = opt(DEMO_TILES, "BlazeFace on large frames: also look at N x N "
                            "overlapping tiles, merged with the full frame's faces (small "
                            "faces far from the camera): auto (frames from 960 px: N = "
                            "long side / 640, skipped when every face the full frame shows "
                            "is large), off, or N (2-6, always)")
    detect_every: int = opt(4, "run the detector every Nth frame; tracks carry boxes between",
                            ge=1)
    refine_reuse: int = opt(VIDEO_REFINE_REUSE, "'+refine' detectors: detection rounds a face's "
                            "second pass is reused (moved with its box) before it is made "
                            "again", ge=0)
    keep_alive: int = opt(KEEP_ALIVE, "detection rounds a face stays shown (at its last box, "
                          "keeping its label, not classified) after the detector last found it")
    classify_every: int = opt(5, "classify each face every Nth frame (staggered across faces); "
                              "smoothed labels carry between", ge=1)
    max_faces: int = opt(4, "classify at most this many (largest) faces", ge=1)
    ema: float = opt(EMA, "weight of the newest probabilities in the moving average (1 = off)",
                     gt=0, le=1)
    hysteresis: float = opt(HYSTERESIS, "a new label must beat the shown one by this "
                            "probability", ge=0, lt=1)
    show_fps: bool = opt(True, "draw FPS and per-stage latency")

    @property
    def images(self) -> tuple[str, ...]:
        """The ``--image`` paths (one string, or several from the command line or TOML)."""
        if not self.image:
            return ()
        return (self.image,) if isinstance(self.image, str) else tuple(self.image)

    @property
    def log_to_stdout(self) -> bool:
        """``--log -``: rows stream to standard output as JSON Lines."""
        return self.log == "-"

    def validate(self) -> None:
        given = [bool(self.video), bool(self.image), self.camera >= 0 or self.picamera]
        if sum(given) != 1:
            raise ConfigError("choose one source: --camera N, --video FILE (or sample) or "
                              "--image FILE|DIR")
        check_config(self)
        if not 0 < self.face_threshold < 1:
            raise ConfigError(f"--face-threshold {self.face_threshold} is outside (0, 1); "
                              "use e.g. 0.5")
        d = self.detector.strip().lower()
        if d not in DETECTORS and not d.endswith(".onnx"):
            raise ConfigError(f"--detector {self.detector!r} is unknown: use "
                              f"{', '.join(DETECTORS)} or a path to a YuNet .onnx")
        if self.log and self.log != "-" and not self.log.lower().endswith((".csv", ".jsonl")):
            raise ConfigError(f"--log {self.log}: use a .csv or .jsonl file name (or - for "
                              "JSON Lines on standard output)")
        from fer_edge.demo.sources import check_not_folder
        from fer_edge.detect.tiled import parse_tiles

        self._check_tiles(parse_tiles(self.detect_tiles), d)
        check_not_folder("--model", self.model)
        check_not_folder("--video", self.video)
        if self.save and not self.save.lower().endswith((".mp4", ".avi")):
            raise ConfigError(f"--save {self.save}: use a .mp4 or .avi file name")
        from fer_edge.demo.sources import parse_size

        parse_size(self.frame_size)

    def _check_tiles(self, tiles: int | None, detector: str) -> None:
        """A tile count (2..6) is for BlazeFace; Haar and YuNet would ignore it silently."""
        from fer_edge.detect import detector_name

        if tiles is not None and tiles > 1 and not detector_name(detector).startswith(
                "blazeface"):
            raise ConfigError(f"--detect-tiles {self.detect_tiles} works with BlazeFace "
                              f"detectors only, not --detector {self.detector}; for small "
                              "faces with it use --detect-width 0 (full size), or drop "
                              "--detect-tiles")

    def check_outputs(self) -> None:
        """Refuse, before the source opens, a --log/--save that exists (without --force) or
        cannot be written; the two must be different files."""
        from fer_edge.demo.logs import check_not_held
        from fer_edge.io import check_output_file

        for flag, value in (("--log", self.log), ("--save", self.save)):
            if value and value != "-":
                check_output_file(value, flag, self.force)
        if self.log and self.log != "-":
            check_not_held(self.log)
        if self.log and self.save and Path(self.log).resolve() == Path(self.save).resolve():
            raise ConfigError("--log and --save name the same file; give two names")
