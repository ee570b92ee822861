"""What serving costs the demo loop: FPS of the headless demo against ``fer-edge serve`` with
no client, 1 client, 8 clients and one slow client, and frame-to-browser latency, on loopback.

Each configuration runs in a fresh process (the server side), the clips looped
(``--loop``), 1 classifier thread; clients run as threads of this script (a separate
process). The loop's FPS is counted by a meter sink over a window of ``--seconds`` after
``--warmup`` seconds (the meter is in every configuration, the headless baseline too).
Configurations:

- ``demo``: the demo loop alone (``run_demo``, no server): the baseline;
- ``serve0``: ``fer-edge serve`` with nobody connected;
- ``serve1`` / ``serve8``: 1 / 8 page-like clients, each reading ``/stream.mjpg`` and
  ``/events`` as fast as they come and ``/stats.json`` once a second (what the page does);
- ``slow``: one client that reads ``/stream.mjpg`` 1 byte a second (``--slow-seconds``).

Latency: every MJPEG part carries ``X-Frame-Stamp`` and every event ``wall``: the wall-clock
time at which the loop began the frame; a client subtracts it from the time the whole JPEG
(or event) arrived. So it includes detection and classification of that frame, the hand-over,
JPEG encoding, and the socket. Clips: ``sample`` (the packaged clip) and ``hamilton``
(``../shared/data/real/short_hamilton_clip.mp4``; skipped when absent).

    taskset -c 0 python benchmarks/serve_load.py          # -> benchmarks/results/serve_load.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from fer_edge.bench.machine import cpu_name  # noqa: E402
from fer_edge.io import atomic_write_csv  # noqa: E402
from fer_edge.serve.config import ServeConfig  # noqa: E402

RESULTS = HERE / "results" / "serve_load.csv"
REAL = ROOT.parent / "shared" / "data" / "real"
CLIPS = {"sample": "sample", "hamilton": str(REAL / "short_hamilton_clip.mp4")}
CONFIGS = {"demo": (False, 0, False), "serve0": (True, 0, False), "serve1": (True, 1, False),
           "serve8": (True, 8, False), "slow": (True, 0, True)}


# -- the server side (a fresh process per configuration) -----------------------------------
class Meter:
    """A sink that counts the loop's frames over a window and then stops the loop."""

    def __init__(self, warmup: float, seconds: float):
        self.warmup, self.seconds = warmup, seconds
        self.t_first = self.w0 = self.w1 = None
        self.f0 = self.f1 = 0

    def on_frame(self, frame, tracks, info) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
        if self.w0 is None and now - self.t_first >= self.warmup:
            self.w0, self.f0 = now, info.index
            self.cpu0, self.main0 = time.process_time(), time.thread_time()
        if self.w0 is not None and now - self.w0 >= self.seconds:
            self.w1, self.f1 = now, info.index
            self.cpu1, self.main1 = time.process_time(), time.thread_time()
            raise KeyboardInterrupt  # the loop's clean stop

    def cpu_ms_per_frame(self) -> tuple[float, float]:
        """(all threads of the process, the loop's thread alone) CPU ms per frame."""
        n = max(1, self.f1 - self.f0)
        return ((self.cpu1 - self.cpu0) * 1e3 / n, (self.main1 - self.main0) * 1e3 / n)

    @property
    def fps(self) -> float:
        return (self.f1 - self.f0) / (self.w1 - self.w0)


def child(opts: dict) -> None:
    """Run one configuration; print ``READY <port>`` when clients may connect, then
    ``RESULT {json}``."""
    from fer_edge.demo.config import DemoConfig
    from fer_edge.serve.app import App
    from fer_edge.serve.config import ServeConfig
    from fer_edge.serve.video import RepeatingVideo

    cfg = DemoConfig(video=opts["clip"], headless=True, threads=1)
    meter = Meter(opts["warmup"], opts["seconds"])
    if not opts["serve"]:
        from fer_edge.demo.loop import run_demo
        from fer_edge.runtime import load_predictor

        predictor = load_predictor(None, 1)
        print("READY 0", flush=True)
        stats = run_demo(cfg, predictor=predictor, source=RepeatingVideo(opts["clip"]),
                         sinks=(meter,))
        serve_ms = None
    else:
        app = App(cfg, ServeConfig(port=0, stream_fps=opts["stream_fps"]), None)
        try:
            app.load(RepeatingVideo(opts["clip"]))
            app.start()
            print(f"READY {app.port}", flush=True)
            stats, _ = app.run_loop(extra_sinks=(meter,))
            serve_ms = app.state.to_dict()["stages_ms"].get("serve")
        finally:
            app.close()
    s = stats.summary()
    cpu_all, cpu_loop = meter.cpu_ms_per_frame()
    print("RESULT " + json.dumps({"fps": round(meter.fps, 2), "frames": meter.f1 - meter.f0,
                                  "cpu_ms_per_frame": round(cpu_all, 3),
                                  "loop_thread_cpu_ms_per_frame": round(cpu_loop, 3),
                                  "seconds": round(meter.w1 - meter.w0, 2),
                                  "detect_ms": s["detect_ms"], "classify_ms": s["classify_ms"],
                                  "serve_ms_mean_last30": serve_ms,
                                  "peak_rss_mb": s["peak_rss_mb"]}), flush=True)


# -- the clients (threads of this process) --------------------------------------------------
class Clients:
    """Page-like clients and a slow one against ``127.0.0.1:port``; latencies in ms."""

    def __init__(self, port: int):
        self.port, self.stop = port, threading.Event()
        self.video_ms: list[float] = []
        self.event_ms: list[float] = []
        self.frames = self.events = self.stats_ok = 0
        self.refused: list[str] = []
        self.slow_closed_after = None
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _connect(self, path: str, rcvbuf: int = 0) -> socket.socket:
        s = socket.socket()
        if rcvbuf:  # before connecting, so the window is small from the start
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect(("127.0.0.1", self.port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        return s

    def start(self, pages: int, slow: bool, slow_seconds: float) -> None:
        for _ in range(pages):
            for target in (self._video, self._events, self._stats):
                self.threads.append(threading.Thread(target=target, daemon=True))
        if slow:
            self.threads.append(threading.Thread(target=self._slow, args=(slow_seconds,),
                                                 daemon=True))
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)

    def _read(self, path: str, consume) -> None:
        """Read the stream at ``path`` until stopped or closed; ``consume(buf) -> rest``
        takes the complete parts at the front of what has arrived."""
        sock, buf = self._connect(path), b""
        with sock:
            while not self.stop.is_set():
                try:
                    chunk = sock.recv(1 << 16)
                except OSError:  # the server process has ended
                    return
                if not chunk:
                    return
                buf = consume(buf + chunk)

    def _video(self) -> None:
        self._read("/stream.mjpg", self._parts)

    def _parts(self, buf: bytes) -> bytes:
        """Consume the complete JPEG parts at the front of ``buf``."""
        if buf.startswith(b"HTTP/"):
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                return buf
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                self.refused.append(head.split(b"\r\n", 1)[0].decode())
                self.stop.set()
            buf = rest
        while True:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                return buf
            fields = dict(ln.split(": ", 1) for ln in head.decode().split("\r\n")
                          if ": " in ln)
            n = int(fields["Content-Length"])
            if len(rest) < n + 2:
                return buf
            now = time.time()
            with self._lock:
                self.frames += 1
                self.video_ms.append((now - float(fields["X-Frame-Stamp"])) * 1e3)
            buf = rest[n + 2:]

    def _events(self) -> None:
        self._read("/events", self._event_blocks)

    def _event_blocks(self, buf: bytes) -> bytes:
        """Consume the complete Server-Sent Events at the front of ``buf``."""
        *blocks, rest = buf.split(b"\n\n")
        now = time.time()
        for block in blocks:
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    ev = json.loads(line[6:])
                    with self._lock:
                        self.events += 1
                        self.event_ms.append((now - ev["wall"]) * 1e3)
        return rest

    def _stats(self) -> None:
        while not self.stop.wait(1.0):
            try:
                with self._connect("/stats.json") as sock:
                    data = b""
                    while chunk := sock.recv(1 << 16):
                        data += chunk
            except OSError:  # the server process has ended
                return
            self.stats_ok += b" 200 " in data.split(b"\r\n", 1)[0]

    def _slow(self, seconds: float) -> None:
        """Read 1 byte a second; note when the server has given up on this stream (its
        ``video_streams`` falls to 0: the client itself would only see the end after reading
        the megabytes already in the socket buffers)."""
        sock, t0 = self._connect("/stream.mjpg", rcvbuf=4096), time.time()
        with sock:
            while time.time() - t0 < seconds and not self.stop.is_set():
                try:
                    if not sock.recv(1):
                        break
                except OSError:
                    break
                if self.slow_closed_after is None and self._video_streams() == 0:
                    self.slow_closed_after = round(time.time() - t0, 1)
                time.sleep(1.0)

    def _video_streams(self) -> int | None:
        try:
            with self._connect("/stats.json") as sock:
                data = b""
                while chunk := sock.recv(1 << 16):
                    data += chunk
            return json.loads(data.partition(b"\r\n\r\n")[2])["video_streams"]
        except (OSError, ValueError, KeyError):
            return None


def run_config(clip: str, name: str, warmup: float, seconds: float, slow_seconds: float,
               stream_fps: float) -> dict:
    """One configuration; ``name`` may end in ``@N`` for ``--stream-fps N`` (``serve1@10``)."""
    base, _, fps = name.partition("@")
    serve, pages, slow = CONFIGS[base]
    window = slow_seconds if slow else seconds
    opts = {"clip": clip, "serve": serve, "warmup": warmup, "seconds": window,
            "stream_fps": float(fps or stream_fps)}
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(opts)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ready = proc.stdout.readline()
    if not ready.startswith("READY"):
        proc.kill()
        sys.exit(f"server process failed: {ready!r} {proc.stderr.read()[-2000:]}")
    clients = Clients(int(ready.split()[1]))
    cpu0 = time.process_time()
    if serve:
        clients.start(pages, slow, slow_seconds)
    out, err = proc.communicate(timeout=warmup + window + 120)
    clients.finish()
    client_cpu_s = time.process_time() - cpu0
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        sys.exit(f"server process failed:\n{err[-2000:]}")
    res = json.loads(line[0][7:])
    med = lambda v: round(float(np.median(v)), 1) if v else None  # noqa: E731
    p90 = lambda v: round(float(np.percentile(v, 90)), 1) if v else None  # noqa: E731
    res.update({"stream_fps": opts["stream_fps"] if serve else "", "clients": pages,
                "slow_client": slow,
                "video_frames_received": clients.frames, "events_received": clients.events,
                "video_latency_ms_median": med(clients.video_ms),
                "video_latency_ms_p90": p90(clients.video_ms),
                "event_latency_ms_median": med(clients.event_ms),
                "event_latency_ms_p90": p90(clients.event_ms),
                "client_cpu_s": round(client_cpu_s, 2),
                "refused": ";".join(clients.refused),
                "slow_client_dropped_after_s": clients.slow_closed_after})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--clips", default="sample,hamilton", help=",".join(CLIPS))
    ap.add_argument("--configs", default="demo,serve0,serve1,serve8,slow",
                    help=",".join(CONFIGS))
    ap.add_argument("--rounds", type=int, default=2,
                    help="run the configurations in turn this many times (shows the noise)")
    ap.add_argument("--warmup", type=float, default=4.0, help="s before the FPS window")
    ap.add_argument("--seconds", type=float, default=20.0, help="FPS window (s)")
    ap.add_argument("--slow-seconds", type=float, default=60.0,
                    help="how long the slow client reads 1 byte a second (its FPS window)")
    ap.add_argument("--stream-fps", type=float, default=ServeConfig.stream_fps,
                    help="fer-edge serve --stream-fps (a configuration name ending in @N, "
                    "e.g. serve1@10, sets it for that one)")
    ap.add_argument("--out", default=str(RESULTS), help="the CSV to write")
    ap.add_argument("--summarize", metavar="CSV", help="only print the summary of a CSV "
                    "this script wrote")
    ap.add_argument("--note", default="", help="free text for the CSV (e.g. what else ran)")
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.summarize:
        import csv

        with open(args.summarize, newline="") as f:
            summarize(list(csv.DictReader(f)))
        return
    rows = []
    for clip in args.clips.split(","):
        if clip != "sample" and not Path(CLIPS[clip]).is_file():
            print(f"skipping {clip}: {CLIPS[clip]} not found")
            continue
        for rnd in range(args.rounds):
            for name in args.configs.split(","):
                res = run_config(CLIPS[clip], name, args.warmup, args.seconds,
                                 args.slow_seconds, args.stream_fps)
                print(f"{clip} round {rnd + 1} {name}: {res['fps']} FPS over {res['seconds']} "
                      f"s; CPU ms/frame {res['cpu_ms_per_frame']} (loop thread "
                      f"{res['loop_thread_cpu_ms_per_frame']}); video latency median "
                      f"{res['video_latency_ms_median']} ms, events "
                      f"{res['event_latency_ms_median']} ms; frames received "
                      f"{res['video_frames_received']}; slow client dropped after "
                      f"{res['slow_client_dropped_after_s']} s", flush=True)
                rows.append({"date": dt.datetime.now().isoformat(timespec="seconds"),
                             "cpu": cpu_name(), "cores_allowed": len(os.sched_getaffinity(0)),
                             "python": platform.python_version(), "clip": Path(clip).name,
                             "round": rnd + 1, "config": name, **res, "note": args.note})
    atomic_write_csv(args.out, rows)
    print(f"wrote {args.out}")
    summarize(rows)


def summarize(rows: list[dict]) -> None:
    """Per clip and configuration: median FPS and CPU ms per frame over the rounds, and what
    they cost against the median of the headless ``demo`` runs."""
    print("clip | config | median FPS (rounds) | FPS cost | CPU ms/frame | CPU cost | "
          "video latency ms | event latency ms")
    for clip in dict.fromkeys(r["clip"] for r in rows):
        mine = [r for r in rows if r["clip"] == clip]
        base = [r for r in mine if r["config"] == "demo"]
        fps0 = float(np.median([float(r["fps"]) for r in base])) if base else None
        cpu0 = float(np.median([float(r["cpu_ms_per_frame"]) for r in base])) if base else None
        for name in dict.fromkeys(r["config"] for r in mine):
            runs = [r for r in mine if r["config"] == name]
            fps = float(np.median([float(r["fps"]) for r in runs]))
            cpu = float(np.median([float(r["cpu_ms_per_frame"]) for r in runs]))
            lat = [float(r["video_latency_ms_median"]) for r in runs
                   if r["video_latency_ms_median"] not in (None, "")]
            evl = [float(r["event_latency_ms_median"]) for r in runs
                   if r["event_latency_ms_median"] not in (None, "")]
            cost = f"{100 * (1 - fps / fps0):.1f} %" if fps0 else "-"
            cpu_cost = f"+{100 * (cpu / cpu0 - 1):.1f} %" if cpu0 else "-"
            print(f"{clip} | {name} | {fps:.1f} ({', '.join(str(r['fps']) for r in runs)}) | "
                  f"{cost} | {cpu:.2f} | {cpu_cost} | "
                  f"{np.median(lat) if lat else '-'} | {np.median(evl) if evl else '-'}")


if __name__ == "__main__":
    main()
