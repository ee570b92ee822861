"""The real-time loop: source -> detect -> track -> classify -> smooth -> draw/log. Light tier."""

from __future__ import annotations

import dataclasses
import logging
import resource
import signal
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from fer_edge.demo.config import DemoConfig
from fer_edge.demo.logs import FaceLog
from fer_edge.demo.overlay import draw, has_gui
from fer_edge.demo.report import FaceTally
from fer_edge.demo.save import VideoSaver
from fer_edge.demo.sources import open_source
from fer_edge.demo.tracking import Tracker
from fer_edge.detect.defaults import REFINE_REUSE

log = logging.getLogger(__name__)


@dataclass
class DemoStats:
    """What a demo run measured. Times in ms per frame on which the stage ran."""

    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    rows_logged: int = 0
    interrupted: bool = False
    stopped_by: str = ""  # "SIGINT" (Ctrl-C) or "SIGTERM" when a signal stopped the run
    skipped: int = 0  # photos that could not be read
    resized: int = 0  # --save frames letterboxed to the first frame's size
    tally: FaceTally = field(default_factory=FaceTally)
    detect_ms: list = field(default_factory=list)
    classify_ms: list = field(default_factory=list)
    draw_ms: list = field(default_factory=list)
    frame_ms: list = field(default_factory=list)
    peak_rss_mb: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict:
        med = {k: float(np.median(v)) if v else 0.0 for k, v in (
            ("detect_ms", self.detect_ms), ("classify_ms", self.classify_ms),
            ("draw_ms", self.draw_ms), ("frame_ms", self.frame_ms))}
        return {"frames": self.frames, "seconds": round(self.seconds, 3),
                "fps": round(self.fps, 1), "dropped": self.dropped,
                "rows_logged": self.rows_logged, "peak_rss_mb": round(self.peak_rss_mb, 1),
                **{k: round(v, 2) for k, v in med.items()}}


def _classify_alternating(predictor, crops: np.ndarray, tracks: list) -> np.ndarray:
    """Flip TTA spread over frames: a face seen for the first time gets both passes (face +
    mirror, averaged); after that each round runs one pass, the face on even rounds and its
    mirror on odd ones, and the track's moving average combines them. Half the classifier
    cost of full flip TTA per round.

    Args:
        predictor: has ``predict(faces (N, h, w) uint8, tta_flip=bool) -> (N, C) float32``.
        crops: (N, h, w) uint8 grey face crops, one per track.
        tracks: the N :class:`~fer_edge.demo.tracking.Track` objects (``probs`` None before
            their first classification; ``rounds`` counts classifications).

    Returns:
        (N, C) float32 probabilities.
    """
    probs = np.empty((len(crops), predictor.spec.num_classes), np.float32)
    new = [k for k, t in enumerate(tracks) if t.probs is None]
    old = [k for k, t in enumerate(tracks) if t.probs is not None]
    if new:
        probs[new] = predictor.predict(crops[new], tta_flip=True)
    if old:
        x = crops[old].copy()
        mirror = [j for j, k in enumerate(old) if tracks[k].rounds % 2 == 1]
        x[mirror] = x[mirror, :, ::-1]
        probs[old] = predictor.predict(x, tta_flip=False)
    for t in tracks:
        t.rounds += 1
    return probs


@dataclass(frozen=True)
class FrameInfo:
    """What the loop tells its sinks about a frame (besides the frame and its tracks).

    Attributes:
        index: frame number (0, 1, ...), as in the ``--log`` rows.
        timestamp: source time in s (video time, or since a camera's first frame).
        started: ``time.perf_counter()`` when the loop began this frame.
        fps: the loop's rate over its last frames (None on the first frame).
        classified: ids of the tracks classified on this frame.
        drawn: whether the frame already carries the overlay (window or ``--save``).
        labels: class names in output order.
        stats: the run's :class:`DemoStats` so far (per-stage ms lists).
    """

    index: int
    timestamp: float
    started: float
    fps: float | None
    classified: tuple
    drawn: bool
    labels: tuple
    stats: DemoStats


@dataclass
class _DemoRun:
    """What the steps of one demo run share: the opened source, models and outputs, the
    tracker (replaced for every photo) and the stats being filled in."""

    cfg: DemoConfig
    source: object
    photos: bool  # each frame an independent photo: no track carries over
    predictor: object
    finder: object
    badge: str  # appended to the overlay's status line
    sinks: tuple
    window: bool  # frames shown in an OpenCV window
    tta: bool | None  # flip TTA forced on/off, or None: the model's spec decides
    alternate: bool  # the two flip passes spread over a face's classification rounds
    tracker: Tracker
    saver: VideoSaver | None
    stats: DemoStats = field(default_factory=DemoStats)
    face_log: FaceLog | None = None
    rate: LoopRate = field(default_factory=lambda: LoopRate())

    @property
    def labels(self) -> list:
        return self.predictor.spec.labels


def run_demo(cfg: DemoConfig, predictor=None, detector=None, source=None,
             sinks: tuple = ()) -> DemoStats:
    """Run the demo loop.

    Video and cameras: faces are detected every ``detect_every`` frames, tracked, classified
    every ``classify_every`` frames and smoothed. Photos (``--image``) are independent: each is
    detected and every face in it classified, with nothing carried over from the photo before.
    SIGINT/SIGTERM stop at the next frame with the log flushed and ``--save`` finalised.

    Args:
        cfg: the demo config (source, model, speed options, outputs).
        predictor: anything with ``.spec`` and ``.predict(faces (N,h,w) uint8 grey) ->
            (N, C) probs`` (called with ``tta_flip=`` unless ``cfg.flip_tta`` is "model");
            default ``load_predictor(cfg.model or None)``.
        detector: a detector object (``detect_faces(frame)`` as in :mod:`fer_edge.detect`, or
            ``detect(frame_bgr) -> [(x, y, w, h)]``); default from ``cfg.detector``,
            ``cfg.face_threshold``, ``cfg.min_face``.
        source: an opened frame source like those of :mod:`fer_edge.demo.sources` (iterable
            of ``(frame_bgr, timestamp_s)``; ``close()``, ``fps``, ``dropped``, ``skipped``,
            ``independent``, ``current``); default ``open_source(cfg)``. Closed here.
        sinks: more outputs (e.g. ``fer-edge serve``): objects with ``on_frame(frame_bgr
            (H, W, 3) uint8, tracks, info: FrameInfo)``, called once per frame after drawing;
            they must return quickly and must not keep or change ``frame`` or the tracks.

    Returns:
        :class:`DemoStats` (frames, FPS, per-stage ms, dropped frames, peak memory).
    """
    cfg.validate()
    cfg.check_outputs()  # an existing --log/--save is refused before anything runs
    source = open_source(cfg) if source is None else source  # first: likeliest mistake
    cfg = _settings_for(source, cfg)
    predictor, finder, badge = _open_models(cfg, predictor, detector, source)
    run = _prepare_run(cfg, source, predictor, finder, badge, sinks)
    stop = _CtrlC()
    cv_threads = _limit_opencv_threads(cfg.threads)
    t_start = time.perf_counter()
    try:
        run.face_log = FaceLog(cfg.log, run.labels, cfg.force) if cfg.log else None
        _frame_loop(run, stop)
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread's handler
        run.stats.interrupted, run.stats.stopped_by = True, stop.requested or "SIGINT"
    finally:
        stop.restore()
        cv2.setNumThreads(cv_threads)
        run.stats.seconds = time.perf_counter() - t_start
        _close_run(run)
    if run.saver:
        run.saver.check()
    return run.stats


def _open_models(cfg: DemoConfig, predictor, detector, source) -> tuple[object, object, str]:
    """(predictor, FaceFinder, overlay badge): the defaults loaded per ``cfg`` where None was
    given, and the personal profile applied; ``source`` is closed if any of it fails."""
    try:
        if predictor is None:
            from fer_edge.runtime import load_predictor

            predictor = load_predictor(cfg.model or None, cfg.threads or None)
        badge = use_profile(predictor, cfg.profile)
        from fer_edge.detect import FaceFinder

        if detector is None:
            detector = demo_detector(cfg)
        finder = FaceFinder(predictor.spec, detector, max_faces=cfg.max_faces, align=cfg.align)
    except BaseException:
        source.close()
        raise
    return predictor, finder, badge


def _prepare_run(cfg: DemoConfig, source, predictor, finder, badge: str,
                 sinks: tuple) -> _DemoRun:
    """The window decision, flip-TTA mode, tracker and video saver of this run."""
    spec = predictor.spec
    window = not cfg.headless and has_gui()
    if not cfg.headless and not window:
        log.info("this OpenCV has no GUI (headless build): running without a window; "
                 "use --save/--log for output, or pip install 'opencv-python<5'")
    photos = source.independent  # each photo on its own: detected and classified, no tracks
    # flip TTA: "on"/"off" forced, "model" = the spec decides, "alternate" = the spec decides
    # whether, and the two passes are spread over a face's classification rounds
    tta = {"on": True, "off": False}.get(cfg.flip_tta)  # None: the model's spec decides
    alternate = cfg.flip_tta == "alternate" and bool(spec.tta_flip)
    tracker = Tracker(ema=cfg.ema, hysteresis=cfg.hysteresis,
                      max_misses=max(2, 2 * cfg.detect_every), keep_alive=cfg.keep_alive)
    saver = VideoSaver(cfg.save, 1.0 if photos else source.fps) if cfg.save else None
    return _DemoRun(cfg, source, photos, predictor, finder, badge, sinks, window, tta,
                    alternate, tracker, saver)


def _frame_loop(run: _DemoRun, stop: _CtrlC) -> None:
    """Every frame of the source until it ends, a stop signal, 'q'/Esc or ``--max-frames``."""
    cfg, stats = run.cfg, run.stats
    for i, (frame, ts) in enumerate(run.source):
        if stop.requested:
            stats.interrupted, stats.stopped_by = True, stop.requested
            break
        t0 = time.perf_counter()
        fps = run.rate.tick(t0)
        if run.photos:  # no track, smoothing or label carries over from the last photo
            run.tracker = Tracker(ema=1.0, hysteresis=0.0)
        if i % cfg.detect_every == 0:
            _detect(run, frame, t0)
        tracks = run.tracker.visible()
        todo = _classify(run, i, frame, tracks)
        stats.tally.note(tracks, run.labels)
        if run.face_log:
            run.face_log.write(i, ts, tracks, run.source.current)
        if (run.window or cfg.save) and not _show(run, frame, tracks, fps):
            break
        if run.sinks:
            _notify_sinks(run, FrameInfo(i, ts, t0, fps, tuple(t.id for t in todo),
                                         bool(run.window or cfg.save), run.labels, stats),
                          frame, tracks)
        stats.frames += 1
        stats.frame_ms.append((time.perf_counter() - t0) * 1e3)
        if cfg.max_frames and stats.frames >= cfg.max_frames:
            break


def _detect(run: _DemoRun, frame: np.ndarray, t0: float) -> None:
    """Detect the faces in ``frame`` (BGR) and update the tracker with them."""
    dets = run.finder.detect(frame)
    run.tracker.update([d.int_box() for d in dets], [d.eyes for d in dets])
    run.stats.detect_ms.append((time.perf_counter() - t0) * 1e3)


def _classify(run: _DemoRun, i: int, frame: np.ndarray, tracks: list) -> list:
    """Classify the tracks due on frame ``i`` (BGR) and smooth their labels; returns them.

    Each face every classify_every-th frame, staggered by track id so several faces do not
    all land on the same frame; a new face at once. A face the last detection round missed
    (shown at its last box by keep_alive) keeps its label: its box is stale, so its crop may
    not hold the face.
    """
    todo = [t for t in tracks if t.misses == 0 and (
        t.probs is None or (i + t.id) % run.cfg.classify_every == 0)]
    if not todo:
        return todo
    t1 = time.perf_counter()
    crops = run.finder.crops(frame, [t.box for t in todo], [t.eyes for t in todo])
    if run.alternate:
        probs = _classify_alternating(run.predictor, crops, todo)
    elif run.tta is None:
        probs = run.predictor.predict(crops)
    else:
        probs = run.predictor.predict(crops, tta_flip=run.tta)
    for t, p in zip(todo, probs):
        run.tracker.observe(t, p)
    run.stats.classify_ms.append((time.perf_counter() - t1) * 1e3)
    return todo


def _show(run: _DemoRun, frame: np.ndarray, tracks: list, fps: float | None) -> bool:
    """Draw the overlay on ``frame`` (BGR, in place), save and/or display it; False when the
    user pressed 'q' or Esc in the window."""
    stats = run.stats
    t2 = time.perf_counter()
    hud = ""
    if run.cfg.show_fps:
        shown = "  --" if fps is None else f"{fps:4.1f}"
        hud = (f"{shown} fps  detect {_last(stats.detect_ms):.1f} ms  classify "
               f"{_last(stats.classify_ms):.1f} ms  draw {_last(stats.draw_ms):.1f} ms")
    draw(frame, tracks, run.labels, (hud + run.badge).strip())
    if run.saver:
        run.saver.write(frame)
    if run.window:
        cv2.imshow("fer-edge", frame)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            return False
    stats.draw_ms.append((time.perf_counter() - t2) * 1e3)
    return True


def _notify_sinks(run: _DemoRun, info: FrameInfo, frame: np.ndarray, tracks: list) -> None:
    """Hand the drawn frame to every extra output (e.g. ``fer-edge serve``)."""
    for sink in run.sinks:
        sink.on_frame(frame, tracks, info)


def _close_run(run: _DemoRun) -> None:
    """Close the source, log, saver and window, and record the final stats (always runs)."""
    stats = run.stats
    stats.dropped, stats.skipped = run.source.dropped, run.source.skipped
    run.source.close()
    if run.face_log:
        stats.rows_logged = run.face_log.rows
        try:
            run.face_log.close()
        except OSError:  # e.g. disk full at the last flush: the write already raised
            pass
    if run.saver:
        run.saver.close()
        stats.resized = run.saver.resized
    if run.window:
        cv2.destroyAllWindows()
    stats.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def demo_detector(cfg: DemoConfig):
    """The face detector ``cfg`` asks for (``--detector``, ``--face-threshold``,
    ``--min-face``, ``--detect-width``, ``--threads``, ``--refine-reuse``, ``--detect-tiles``).

    Raises:
        ConfigError: a bad detector option. ModelFileError: a missing or corrupt model file.
    """
    from fer_edge.detect import build_detector

    return build_detector(cfg.detector, score_threshold=cfg.face_threshold,
                          min_size=None if cfg.min_face < 0 else cfg.min_face,
                          detect_width=cfg.detect_width, num_threads=cfg.threads or 1,
                          refine_reuse=cfg.refine_reuse, tiles=cfg.detect_tiles)


def use_profile(predictor, path: str) -> str:
    """Load a ``fer-edge enroll`` profile and personalise ``predictor`` with it (every face in
    view: the demo does not recognise who is who), saying so in the log.

    Returns:
        The note appended to the overlay's status line ("  | personal profile"), or "" when
        ``path`` is empty (no profile).
    """
    from fer_edge.personal.profile import load_profile

    if not path:
        return ""
    profile = load_profile(path)
    predictor.use_profile(profile)
    log.info("personal profile %s active (enrolled: %s; made with model sha256 %s..): it "
             "applies to every face in view", path, ", ".join(profile.enrolled),
             profile.model_sha256[:12])
    return "  | personal profile"


class LoopRate:
    """The loop's real frame rate for the overlay: frames per second over the intervals between
    the starts of consecutive frames (source read, detection, classification, drawing and
    display all included), as a moving average over the last ``window`` intervals.

    ``tick`` returns None on the first frame, when no interval exists yet (the old readout
    divided by the time since the loop started and showed ~150,000 fps there).
    """

    def __init__(self, window: int = 30):
        self.window, self._times = window, []

    def tick(self, now: float) -> float | None:
        self._times = (self._times + [now])[-(self.window + 1):]
        if len(self._times) < 2:
            return None
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else None


class _CtrlC:
    """Ctrl-C (SIGINT) or SIGTERM (``kill``, systemd, ``timeout``) stops the loop at the next
    frame, not wherever the interpreter happens to be, so the log is flushed, an .mp4 from
    ``--save`` is finalised (playable) and the summary is printed either way.

    A KeyboardInterrupt raised inside a runtime or OpenCV call can leave native threads
    mid-call; here the first signal only records its name in ``requested`` ("SIGINT" or
    "SIGTERM"), which the loop checks between frames, and a second one raises
    KeyboardInterrupt (for a loop stuck in one frame). Only the main thread can install a
    signal handler; elsewhere both signals keep their default behaviour.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = ""
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def restore(self) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}


def _settings_for(source, cfg: DemoConfig) -> DemoConfig:
    """Photos (an independent source) are each detected, with a fresh second pass: detect
    every frame, no reuse of a second pass made for another photo (the API's
    :data:`~fer_edge.detect.defaults.REFINE_REUSE`)."""
    if not source.independent:
        return cfg
    return dataclasses.replace(cfg, detect_every=1, refine_reuse=REFINE_REUSE)


def _limit_opencv_threads(threads: int) -> int:
    """Limit OpenCV's own thread pool to ``threads`` (0: leave it); returns the previous
    setting, for ``cv2.setNumThreads`` to restore at the end of the run."""
    previous = cv2.getNumThreads()
    if threads:
        cv2.setNumThreads(threads)
    return previous


def _last(values: list) -> float:
    return values[-1] if values else 0.0
