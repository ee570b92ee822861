"""The demo loop's ``serve`` output: JPEGs, events and status from every frame. Light tier.

:class:`ServeSink` is one of ``run_demo``'s sinks. Per frame it costs the loop well under a
millisecond: events are built for the faces classified on the frame, the status at most
``STATUS_HZ`` times a second, and a frame is copied (and drawn on, when the loop did not draw)
only while someone watches, at most ``stream_fps`` times a second. JPEG encoding runs in a
thread of its own that always takes the newest frame handed over.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import cv2
import numpy as np

from fer_edge.demo.overlay import draw
from fer_edge.serve.hubs import EventHub, FrameHub
from fer_edge.serve.state import LiveState

STATUS_HZ = 10.0
#: the encoder looks for a frame at least this often (s), in case a wake-up was skipped
ENCODER_POLL_S = 0.1
#: frames over which the status's per-stage milliseconds are medians
STAGE_WINDOW = 30


def face_event(info, track, wall: float) -> dict:
    """One classified face as the ``/events`` stream sends it (the ``--log`` row's values).

    Returns:
        ``frame``, ``time`` (source s), ``wall`` (epoch s the loop began the frame),
        ``face_id``, ``box`` [x, y, w, h] frame pixels, ``probs`` {label: p} (smoothed),
        ``label`` (shown) and ``raw_label`` (this classification's argmax).
    """
    labels = info.labels
    return {"frame": info.index, "time": round(info.timestamp, 4), "wall": round(wall, 4),
            "face_id": track.id, "box": [int(v) for v in track.box],
            "probs": {lab: round(float(p), 5) for lab, p in zip(labels, track.probs)},
            "label": labels[track.label], "raw_label": labels[int(np.argmax(track.raw))]}


def sse(event: str, data: dict, seq: int) -> bytes:
    """One Server-Sent Event, encoded."""
    return f"id: {seq}\nevent: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _median_tail(values: list) -> float:
    """Median of the last runs of a stage (detect/classify run on some frames only)."""
    tail = values[-STAGE_WINDOW:]
    return round(float(np.median(tail)), 2) if tail else 0.0


def _mean_tail(values: list) -> float:
    """Mean over the last frames (what a stage costs per frame, all frames counted)."""
    tail = values[-STAGE_WINDOW:]
    return round(float(np.mean(tail)), 2) if tail else 0.0


class ServeSink:
    """Turns frames into JPEGs for :class:`FrameHub`, events for :class:`EventHub` and status
    for :class:`LiveState`.

    Args:
        frames, events, state: the hubs the HTTP handlers read.
        stream_fps: most frames encoded per second.
        jpeg_quality: 1-100.
        show_fps: draw the FPS/latency line on the streamed frames.
        stop: once set, :meth:`on_frame` raises KeyboardInterrupt, which the loop takes as
            Ctrl-C (for a signal that came before the loop installed its handler).
    """

    def __init__(self, frames: FrameHub, events: EventHub, state: LiveState,
                 stream_fps: float, jpeg_quality: int, show_fps: bool = True,
                 stop: threading.Event | None = None):
        self.frames, self.events, self.state, self.stop_event = frames, events, state, stop
        self.min_interval, self.quality, self.show_fps = 1.0 / stream_fps, jpeg_quality, show_fps
        self._epoch = time.time() - time.perf_counter()  # perf_counter -> wall clock
        self._last_handover = -1e9
        self._last_status = -1e9
        self._seq = 0
        self._sink_ms: list[float] = []
        self._cond = threading.Condition()
        self._pending = None
        self._stopped = False
        self._encoder = threading.Thread(target=self._encode_loop, name="serve-jpeg",
                                         daemon=True)
        self._encoder.start()

    def on_frame(self, frame: np.ndarray, tracks, info) -> None:
        """Called by the loop after drawing: ``frame`` (H, W, 3) uint8 BGR."""
        if self.stop_event is not None and self.stop_event.is_set():
            raise KeyboardInterrupt
        t0 = time.perf_counter()
        wall = self._epoch + info.started
        self._publish_events(tracks, info, wall)
        if t0 - self._last_status >= 1.0 / STATUS_HZ:
            self._last_status = t0
            self.state.update(self._status(tracks, info))
        if self.frames.wanted() and t0 - self._last_handover >= self.min_interval:
            self._last_handover = t0
            self._hand_over(frame, tracks, info, wall)
        self._sink_ms = (self._sink_ms + [(time.perf_counter() - t0) * 1e3])[-STAGE_WINDOW:]

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._encoder.join(2.0)

    def _publish_events(self, tracks, info, wall: float) -> None:
        done = [t for t in tracks if t.id in info.classified and t.probs is not None]
        if not done:
            return
        self.state.add_classified(wall, [t.probs for t in done])
        if self.events.streams == 0:
            return
        payloads = []
        for t in done:
            self._seq += 1
            payloads.append(sse("face", face_event(info, t, wall), self._seq))
        self.events.publish(payloads)

    def _status(self, tracks, info) -> dict:
        s = info.stats
        stages = {"detect": _median_tail(s.detect_ms), "classify": _median_tail(s.classify_ms),
                  "draw": _median_tail(s.draw_ms), "serve": _mean_tail(self._sink_ms),
                  "frame": _mean_tail(s.frame_ms)}
        faces = [{"face_id": t.id, "box": [int(v) for v in t.box],
                  "label": info.labels[t.label] if t.probs is not None else None,
                  "probs": None if t.probs is None else [round(float(p), 4) for p in t.probs]}
                 for t in tracks]
        return {"frames": s.frames + 1, "frame": info.index, "time": round(info.timestamp, 3),
                "fps": round(info.fps or 0.0, 1), "stages_ms": stages, "faces": faces,
                "dropped": getattr(s, "dropped", 0)}

    def _hand_over(self, frame: np.ndarray, tracks, info, wall: float) -> None:
        """Copy the frame (and what to draw on it) for the encoder thread."""
        overlay = None
        if not info.drawn:  # drawn by the encoder, off the loop's thread
            faces = [SimpleNamespace(id=t.id, box=tuple(t.box), label=t.label,
                                     probs=None if t.probs is None else t.probs.copy())
                     for t in tracks]
            overlay = (faces, info.labels, self._hud(info) if self.show_fps else "")
        self._pending = (frame.copy(), overlay, wall, info.index)  # replaces an untaken one
        if self._cond.acquire(blocking=False):  # never wait: the encoder polls anyway
            try:
                self._cond.notify()
            finally:
                self._cond.release()

    def _hud(self, info) -> str:
        s = info.stats
        fps = "  --" if info.fps is None else f"{info.fps:4.1f}"
        last = lambda v: v[-1] if v else 0.0  # noqa: E731
        return (f"{fps} fps  detect {last(s.detect_ms):.1f} ms  classify "
                f"{last(s.classify_ms):.1f} ms")

    def _encode_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopped or self._pending is not None,
                                    ENCODER_POLL_S)
            if self._stopped:
                return
            item, self._pending = self._pending, None
            if item is None:
                continue
            img, overlay, wall, index = item
            if overlay is not None:
                draw(img, *overlay)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                self.frames.publish(buf.tobytes(), wall, index)
