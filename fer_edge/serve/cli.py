"""``fer-edge serve`` arguments and run. Light tier.

The demo loop (:func:`fer_edge.demo.loop.run_demo`) runs in the main thread with one more
output, :class:`~fer_edge.serve.sink.ServeSink`; the HTTP server runs in threads beside it.
Everything a user can get wrong (options, token file, port, host) is checked before the camera
opens.
"""

from __future__ import annotations

import argparse
import copy
import logging
import signal
import socket
import sys
import threading

from fer_edge.config import (
    add_config_args,
    add_config_parser,
    config_from_args,
    recipe_tables,
)
from fer_edge.demo.config import DemoConfig
from fer_edge.errors import ConfigError, SourceError
from fer_edge.serve.auth import is_loopback, load_token, new_token
from fer_edge.serve.config import ServeConfig

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_config_parser(
        sub, "serve", DemoConfig,
        help="the live demo as a web page (video, labels, timeline, events)",
        description="Run the demo loop and serve it as a web page with MJPEG video, per-face "
                    "probabilities, an emotion timeline, Server-Sent Events (/events), "
                    "/stats.json and /snapshot.jpg. Listens on 127.0.0.1 unless --host says "
                    "otherwise; any other address needs the access token printed at start. "
                    "--config reads the demo options ([demo] table) and the serve options "
                    "([serve] table). Ctrl-C stops it.")
    add_config_args(p, ServeConfig)
    return p


def configs(args: argparse.Namespace) -> tuple[DemoConfig, ServeConfig]:
    """The demo options (flags over ``--config``'s ``[demo]`` table; headless unless
    ``--no-headless``) and the serve options (flags over its ``[serve]`` table). A recipe may
    hold either table or both."""
    fixed = {"headless": True} if getattr(args, "headless", None) is None else {}
    tables = recipe_tables(getattr(args, "config_file", None))
    demo_args, serve_args = copy.copy(args), copy.copy(args)
    if tables and "demo" not in tables and "serve" in tables:
        demo_args.config_file = None  # a [serve]-only recipe
    if not tables or "serve" not in tables:
        serve_args.config_file = None  # flags only
    return (config_from_args(DemoConfig, demo_args, **fixed),
            config_from_args(ServeConfig, serve_args))


def access(scfg: ServeConfig) -> tuple[str | None, str]:
    """(token or None, where it came from). A token is required off loopback, and whenever
    ``--token-file`` is given."""
    if scfg.token_file:
        return load_token(scfg.token_file), f"from {scfg.token_file}"
    if is_loopback(scfg.host):
        return None, ""
    return new_token(), "random, for this run only"


def open_video_or_source(cfg: DemoConfig, scfg: ServeConfig):
    from fer_edge.demo.sources import open_source

    if scfg.loop and not cfg.video:
        raise ConfigError("--loop repeats a --video file; drop it or give --video FILE")
    if scfg.loop:
        from fer_edge.serve.video import RepeatingVideo

        return RepeatingVideo(cfg.video)
    return open_source(cfg)


def page_url(scfg: ServeConfig, port: int, token: str | None) -> str:
    host = scfg.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/" + (f"?token={token}" if token else "")


class _Stop:
    """SIGINT and SIGTERM stop the run cleanly at any moment.

    While the demo loop runs, its own SIGINT handler stops it at the next frame (SIGTERM is
    passed on to it as a SIGINT); before that (loading) a signal is remembered and the sink
    stops the loop on its first frame; after it, a signal ends the wait before shutdown.
    """

    def __init__(self):
        self.event = threading.Event()
        self._old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        signal.signal(signal.SIGINT, self._on_int)
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_int(self, signum, frame):
        self.event.set()

    def _on_term(self, signum, frame):
        if signal.getsignal(signal.SIGINT) is self._on_int:
            self.event.set()
        else:  # the demo loop's handler
            signal.raise_signal(signal.SIGINT)

    def wait(self) -> None:
        while not self.event.wait(0.5):
            pass

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def run(args: argparse.Namespace) -> int:
    cfg, scfg = configs(args)
    cfg.validate()
    cfg.check_outputs()  # an existing --log/--save is refused before anything runs
    token, origin = access(scfg)
    from fer_edge.serve.app import App

    app = App(cfg, scfg, token)  # binds the port: a taken port or foreign host fails here
    stop = _Stop()
    try:
        source = open_video_or_source(cfg, scfg)
        app.load(source, stop.event)
        app.start()
        people = sys.stderr if cfg.log == "-" else sys.stdout  # --log - owns stdout
        print(f"fer-edge serve: open {page_url(scfg, app.port, token)}" +
              (f"  (access token {origin}; keep it private)" if token else
               "  (this machine only)"), file=people, flush=True)
        stats, lost = app.run_loop()
        code = report(stats, lost)
        if not (stats and stats.interrupted) and not stop.event.is_set():
            print("fer-edge serve: the source has ended; the page stays up until Ctrl-C",
                  file=people, flush=True)
            stop.wait()
        return code
    finally:
        app.close()
        stop.restore()


def report(stats, lost: SourceError | None) -> int:
    """Print the run's summary (and a lost camera) to the terminal; the exit code."""
    s = stats.summary() if stats else None
    if lost is not None:
        print(f"fer-edge serve: error: {lost}", file=sys.stderr, flush=True)
    if s:
        print(("stopped (Ctrl-C or SIGTERM); " if stats.interrupted else "") +
              f"{s['frames']} frames in {s['seconds']:.1f} s = {s['fps']} FPS; median ms per "
              f"frame: detect {s['detect_ms']}, classify {s['classify_ms']}; dropped "
              f"{s['dropped']}", flush=True)
    return 1 if lost is not None else 0
