"""HTTP routes of ``fer-edge serve``: the page, its assets and the machine endpoints. Light tier.

Only the paths of :data:`ROUTES` exist; a URL path is compared with them as a whole string and
never joined to a file-system path, so ``/../``, ``%2e%2e`` and the like are 404. Every request
is checked for the token first (when one is required): without it every path, known or not,
is 401 with no detail.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from fer_edge.serve.hubs import StreamsFull

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: the page's assets: URL path -> (file under static/, content type). Nothing else is read.
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
BOUNDARY = "ferframe"
#: every path the server answers (anything else is 404)
ROUTES = (*ASSETS, "/stream.mjpg", "/events", "/stats.json", "/snapshot.jpg")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'",
}
#: seconds of silence after which an event stream sends a comment (finds dead clients)
HEARTBEAT_S = 10.0
#: seconds a new connection has to send its request line and headers (a silent one holds a
#: thread and a slot of the server's connection cap until then)
REQUEST_TIMEOUT_S = 5.0


def load_assets() -> dict[str, bytes]:
    """The page's files, read once at start (a missing one is a broken install)."""
    return {path: (STATIC / name).read_bytes() for path, (name, _) in ASSETS.items()}


class Handler(BaseHTTPRequestHandler):
    """One request. ``self.server`` is a :class:`fer_edge.serve.server.PageServer`."""

    server_version = "fer-edge"
    sys_version = ""
    timeout = 15  # s: a client that sends nothing, or reads nothing, for this long is dropped

    def setup(self):
        super().setup()
        self.connection.settimeout(REQUEST_TIMEOUT_S)  # until the request is read
        self.server.track(self.connection)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.connection.settimeout(self.timeout)  # the answer (a stream) may take longer
        return ok

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def version_string(self) -> str:  # no Python version in the Server header
        return self.server_version

    def log_message(self, format, *args):  # never the query string: it may hold the token
        log.debug("%s %s", self.client_address[0], urlsplit(self.path).path)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        if not self.server.check.allows(url.query, self.headers.get("Authorization")):
            self._plain(401, "unauthorized", {"WWW-Authenticate": "Bearer"})
            return
        route = {"/stream.mjpg": self._stream, "/events": self._events,
                 "/stats.json": self._stats, "/snapshot.jpg": self._snapshot}.get(url.path)
        if route is not None:
            route()
        elif url.path in ASSETS:
            self._asset(url.path)
        else:
            self._plain(404, "not found")

    def _other(self):
        url = urlsplit(self.path)
        if not self.server.check.allows(url.query, self.headers.get("Authorization")):
            self._plain(401, "unauthorized", {"WWW-Authenticate": "Bearer"})
            return
        self._plain(405, "only GET and HEAD", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other

    # -- responses ---------------------------------------------------------------------------
    def _head(self, code: int, ctype: str, length: int | None = None,
              extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()

    def _body(self, code: int, ctype: str, body: bytes, extra: dict | None = None) -> None:
        self._head(code, ctype, len(body), extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _plain(self, code: int, text: str, extra: dict | None = None) -> None:
        self._body(code, "text/plain; charset=utf-8", (text + "\n").encode(), extra)

    def _asset(self, path: str) -> None:
        body = self.server.assets[path]
        if path == "/":
            body = body.replace(b"__QUERY__", self.server.query.encode())
        self._body(200, ASSETS[path][1], body)

    def _stats(self) -> None:
        extra = {"video_streams": self.server.frames.streams,
                 "event_streams": self.server.events.streams,
                 "max_streams": self.server.frames.max_streams,
                 "events_dropped": self.server.events.dropped}
        body = json.dumps(self.server.state.to_dict(extra)).encode()
        self._body(200, "application/json", body)

    def _snapshot(self) -> None:
        jpeg = self.server.frames.snapshot()
        if jpeg is None:
            self._plain(503, "no frame yet; retry in a second", {"Retry-After": "1"})
            return
        self._body(200, "image/jpeg", jpeg.data, {"X-Frame-Index": str(jpeg.index),
                                                  "X-Frame-Stamp": f"{jpeg.stamp:.4f}"})

    def _refuse_full(self, exc: StreamsFull, what: str) -> None:
        self._plain(503, f"too many {what} streams open ({exc.limit}, the --max-streams cap); "
                    "close one and retry", {"Retry-After": "5"})

    def _stream(self) -> None:
        """``multipart/x-mixed-replace`` MJPEG: the newest frame whenever there is a new one
        (frames the client was too slow for are skipped, never queued)."""
        hub = self.server.frames
        try:
            hub.open_stream()
        except StreamsFull as exc:
            self._refuse_full(exc, "video")
            return
        try:
            self._head(200, f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            seq, idle = 0, 0
            while self.command != "HEAD" and not hub.closed:
                jpeg = hub.next_after(seq)  # waits up to 1 s
                idle = 0 if jpeg is not None else idle + 1
                if idle >= HEARTBEAT_S:  # no new frame (source ended): resend the last one,
                    jpeg, idle = hub.latest(), 0  # which also finds clients that left
                if jpeg is None:
                    continue
                seq = jpeg.seq
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                    f"{len(jpeg.data)}\r\nX-Frame-Index: {jpeg.index}\r\nX-Frame-Stamp: "
                    f"{jpeg.stamp:.4f}\r\n\r\n".encode() + jpeg.data + b"\r\n")
        except OSError:  # the client left, or stalled (TimeoutError)
            pass
        finally:
            hub.close_stream()

    def _events(self) -> None:
        """Server-Sent Events: ``event: face`` per classified face (see ``sink.face_event``)."""
        hub = self.server.events
        try:
            sub = hub.subscribe()
        except StreamsFull as exc:
            self._refuse_full(exc, "event")
            return
        try:
            self._head(200, "text/event-stream; charset=utf-8")
            self.wfile.write(b": fer-edge events\nretry: 2000\n\n")
            self.wfile.flush()
            quiet = 0.0
            while self.command != "HEAD":
                batch = hub.take(sub)
                if batch is None:
                    break
                quiet = 0.0 if batch else quiet + 1.0
                if quiet >= HEARTBEAT_S:
                    batch, quiet = [b": keep-alive\n\n"], 0.0
                if batch:
                    self.wfile.write(b"".join(batch))
                    self.wfile.flush()
        except OSError:  # the client left, or stalled (TimeoutError)
            pass
        finally:
            hub.unsubscribe(sub)
