"""Hand-over points between the demo loop and the HTTP clients. Light tier.

The loop never waits for a client, nor for a lock an HTTP thread may hold: it appends to
bounded queues (atomic in CPython) and hands frames to its encoder thread, which publishes
them here. Each client thread takes the newest frame
when it is ready for one (frames in between are skipped) and its own queue of events (the
oldest are dropped, and counted, when it falls more than ``EventHub.backlog`` behind).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


class StreamsFull(Exception):
    """A stream was refused: ``limit`` are open already."""

    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


@dataclass(frozen=True)
class Jpeg:
    """One encoded frame: ``seq`` counts published frames; ``stamp`` is the wall-clock time
    (``time.time()``) at which the loop began the frame; ``index`` its frame number."""

    seq: int
    data: bytes
    stamp: float
    index: int


class FrameHub:
    """The newest JPEG of the annotated video, for every stream and snapshot.

    Args:
        max_streams: most streams open at once; :meth:`open_stream` refuses the next.
    """

    def __init__(self, max_streams: int):
        self.max_streams = max_streams
        self._cond = threading.Condition()
        self._jpeg: Jpeg | None = None
        self._streams = 0
        self._waiting = 0
        self._snapshot_waiters = 0
        self.closed = False

    # -- the producer side (the loop's encoder thread) --------------------------------------
    def wanted(self) -> bool:
        """Whether anyone is ready for a new frame: a stream waiting for one (not one still
        busy sending the last frame to a slow client) or a snapshot. Nothing is encoded for
        nobody."""
        return self._waiting > 0 or self._snapshot_waiters > 0

    def publish(self, data: bytes, stamp: float, index: int) -> None:
        with self._cond:
            seq = self._jpeg.seq + 1 if self._jpeg else 1
            self._jpeg = Jpeg(seq, data, stamp, index)
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiting client so that it ends (the server is stopping)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # -- the client side (HTTP handler threads) ---------------------------------------------
    def open_stream(self) -> None:
        """Count one more stream, or raise :class:`StreamsFull`."""
        with self._cond:
            if self._streams >= self.max_streams:
                raise StreamsFull(self.max_streams)
            self._streams += 1

    def close_stream(self) -> None:
        with self._cond:
            self._streams -= 1

    @property
    def streams(self) -> int:
        return self._streams

    def next_after(self, seq: int, timeout: float = 1.0) -> Jpeg | None:
        """The newest frame if it is newer than ``seq``, waiting up to ``timeout`` s for one;
        None on timeout or when the hub closes."""
        with self._cond:
            self._waiting += 1
            try:
                self._cond.wait_for(
                    lambda: self.closed or (self._jpeg and self._jpeg.seq > seq), timeout)
            finally:
                self._waiting -= 1
            if self.closed or not self._jpeg or self._jpeg.seq <= seq:
                return None
            return self._jpeg

    def latest(self) -> Jpeg | None:
        return self._jpeg

    def snapshot(self, timeout: float = 2.0) -> Jpeg | None:
        """A frame encoded after this call (up to ``timeout`` s), else the newest one."""
        with self._cond:
            seq = self._jpeg.seq if self._jpeg else 0
            self._snapshot_waiters += 1
            try:
                self._cond.wait_for(
                    lambda: self.closed or (self._jpeg and self._jpeg.seq > seq), timeout)
            finally:
                self._snapshot_waiters -= 1
            return self._jpeg


class _Subscriber:
    def __init__(self, backlog: int):
        self.queue: deque[bytes] = deque(maxlen=backlog)


class EventHub:
    """Server-Sent Events: each subscriber gets every event published after it subscribed,
    unless it falls more than ``backlog`` events behind (then the oldest are dropped).

    The loop's side takes no lock: ``deque.append`` is atomic in CPython, and a subscriber
    polls its own queue every ``poll_s`` seconds.

    Args:
        max_streams: most subscribers at once.
        backlog: events kept per subscriber.
        poll_s: how often a subscriber looks for new events.
    """

    def __init__(self, max_streams: int, backlog: int = 512, poll_s: float = 0.05):
        self.max_streams, self.backlog, self.poll_s = max_streams, backlog, poll_s
        self._lock = threading.Lock()  # subscribe/unsubscribe only (HTTP threads)
        self._subs: tuple[_Subscriber, ...] = ()
        self.closed = False
        self.dropped = 0

    @property
    def streams(self) -> int:
        return len(self._subs)

    def publish(self, payloads: list[bytes]) -> None:
        """Queue encoded events (``b"event: ...\\ndata: ...\\n\\n"``) for every subscriber."""
        for sub in self._subs:  # a tuple, replaced (never changed) by subscribe/unsubscribe
            over = len(sub.queue) + len(payloads) - self.backlog
            if over > 0:
                self.dropped += over
            sub.queue.extend(payloads)

    def close(self) -> None:
        self.closed = True

    def subscribe(self) -> _Subscriber:
        with self._lock:
            if len(self._subs) >= self.max_streams:
                raise StreamsFull(self.max_streams)
            sub = _Subscriber(self.backlog)
            self._subs = (*self._subs, sub)
            return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def take(self, sub: _Subscriber, timeout: float = 1.0) -> list[bytes] | None:
        """Everything queued for ``sub`` (looking every ``poll_s`` for up to ``timeout`` s);
        [] on timeout, None once the hub is closed."""
        t_end = time.monotonic() + timeout
        while not sub.queue and not self.closed and time.monotonic() < t_end:
            time.sleep(self.poll_s)
        if self.closed:
            return None
        out = []
        while sub.queue:
            out.append(sub.queue.popleft())
        return out
