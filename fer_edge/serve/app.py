"""One ``fer-edge serve`` run: server, hubs, sink and the demo loop, started and closed in
order. Light tier."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from fer_edge import __version__
from fer_edge.demo.config import DemoConfig
from fer_edge.errors import SourceError
from fer_edge.serve.auth import TokenCheck
from fer_edge.serve.config import ServeConfig
from fer_edge.serve.hubs import EventHub, FrameHub
from fer_edge.serve.server import bind
from fer_edge.serve.sink import ServeSink
from fer_edge.serve.state import LiveState

log = logging.getLogger(__name__)


def about(cfg: DemoConfig, predictor, source) -> dict:
    """What the page shows as running: model, backend, detector, profile, source, cadence."""
    profile = getattr(cfg, "profile", None)  # the demo's --profile, where this build has one
    return {"model": Path(getattr(predictor, "path", "") or "").name or "?",
            "model_default": not cfg.model, "backend": getattr(predictor, "backend", "?"),
            "detector": cfg.detector, "profile": profile or "none",
            "source": Path(getattr(source, "name", "?")).name, "live": bool(source.live),
            "detect_every": cfg.detect_every, "classify_every": cfg.classify_every,
            "version": __version__}


class App:
    """Binds the port at once (so a taken port or a foreign --host fails before the camera
    opens); :meth:`load`, :meth:`start`, :meth:`run_loop`, then always :meth:`close`."""

    def __init__(self, cfg: DemoConfig, scfg: ServeConfig, token: str | None):
        self.cfg, self.scfg = cfg, scfg
        self.frames = FrameHub(scfg.max_streams)
        self.events = EventHub(scfg.max_streams)
        self.state = LiveState({"profile": getattr(cfg, "profile", None) or "none"})
        self.server = bind(scfg.host, scfg.port, check=TokenCheck(token),
                           query=f"?token={token}" if token else "",
                           frames=self.frames, events=self.events, state=self.state)
        self.source = self.predictor = self.detector = self.sink = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def source_name(self) -> str:
        return getattr(self.source, "name", "")

    def load(self, source, stop: threading.Event | None = None) -> None:
        """Take the opened source, load the model and the detector and check the profile
        (the source is closed on failure), all before the page's address is printed.
        ``stop``: once set, the loop stops at its next frame (a signal that came early)."""
        self.source = source
        try:
            from fer_edge.demo.loop import demo_detector
            from fer_edge.runtime import load_predictor

            self.predictor = load_predictor(self.cfg.model or None, self.cfg.threads or None)
            if self.cfg.profile:  # applied by the loop; a bad one is refused here, early
                from fer_edge.personal.profile import load_profile

                load_profile(self.cfg.profile).check_model(self.predictor)
            self.detector = demo_detector(self.cfg)
        except BaseException:
            source.close()
            self.source = None
            raise
        self.state.configure(about(self.cfg, self.predictor, source), self.predictor.spec.labels)
        self.sink = ServeSink(self.frames, self.events, self.state, self.scfg.stream_fps,
                              self.scfg.jpeg_quality, self.cfg.show_fps, stop)

    def start(self) -> None:
        self.state.set_source("running")
        self.server.start()

    def run_loop(self, extra_sinks: tuple = ()):
        """Run the demo loop until the source ends, Ctrl-C/SIGTERM, or a camera fails.
        ``extra_sinks``: more outputs beside the server's (a benchmark's meter).

        Returns:
            (DemoStats or None, the SourceError of a lost live source or None).
        """
        from fer_edge.demo.loop import run_demo

        source, self.source = self.source, None  # run_demo closes it
        try:
            stats = run_demo(self.cfg, predictor=self.predictor, detector=self.detector,
                             source=source, sinks=(self.sink, *extra_sinks))
        except SourceError as exc:
            if not source.live:
                raise
            self.state.set_source("lost", str(exc))
            return None, exc
        capped = bool(self.cfg.max_frames) and stats.frames >= self.cfg.max_frames
        if source.live and not (stats.interrupted or capped):
            lost = SourceError(f"{source.name} stopped delivering frames; check its cable "
                               "and power, then start again")
            self.state.set_source("lost", str(lost))
            return stats, lost
        self.state.set_source("stopped" if stats.interrupted else "ended",
                              "--max-frames reached" if capped else
                              "" if stats.interrupted else "end of the video")
        return stats, None

    def close(self) -> None:
        """Stop the encoder, end every stream and close the sockets (idempotent)."""
        if self.sink is not None:
            self.sink.stop()
            self.sink = None
        if self.source is not None:
            self.source.close()
            self.source = None
        self.server.stop()
