"""Binding and running the HTTP server of ``fer-edge serve``. Light tier.

The standard library's :class:`http.server.ThreadingHTTPServer` (one thread per connection)
is enough for MJPEG and Server-Sent Events at a few clients, and adds no dependency to the
light install.
"""

from __future__ import annotations

import errno
import socket
import threading
from http.server import ThreadingHTTPServer

from fer_edge.errors import ConfigError
from fer_edge.serve.auth import TokenCheck
from fer_edge.serve.hubs import EventHub, FrameHub
from fer_edge.serve.routes import Handler, load_assets
from fer_edge.serve.state import LiveState

#: the whole answer to a connection past the server's cap
BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 53\r\n\r\n"
        b"too many connections to fer-edge serve; retry later\n\n")


class PageServer(ThreadingHTTPServer):
    """The server and what its handlers read: token check, hubs, state, page assets."""

    daemon_threads = True

    def __init__(self, address: tuple, family: int, check: TokenCheck, query: str,
                 frames: FrameHub, events: EventHub, state: LiveState):
        self.address_family = family
        self.check, self.query = check, query
        self.frames, self.events, self.state = frames, events, state
        self.assets = load_assets()
        self.max_connections = 2 * frames.max_streams + events.max_streams + 32
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, Handler)

    def track(self, conn) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def untrack(self, conn) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def verify_request(self, request, client_address) -> bool:
        """Refuse a connection past :attr:`max_connections` (each costs a thread, and streams
        are capped separately, so only a flood reaches this) with a 503 that says so, then
        close it: a browser shows "busy", not a dropped connection."""
        with self._conns_lock:
            if len(self._conns) < self.max_connections:
                return True
        try:  # a new socket's send buffer is empty: this never blocks the accepting thread
            request.setblocking(False)
            request.send(BUSY)
        except OSError:
            pass
        return False

    def handle_error(self, request, client_address):  # a client's trouble is not ours to print
        pass

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="serve-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end every stream (stalled ones too) and close every socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(2.0)
        self.frames.close()
        self.events.close()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()

    @property
    def port(self) -> int:
        return self.server_address[1]


def resolve(host: str, port: int) -> tuple[int, tuple]:
    """(address family, socket address) to bind ``host``:``port``.

    Raises:
        ConfigError: ``host`` is not an address or name this machine can use.
    """
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        raise ConfigError(_not_here(host)) from None
    family, _, _, _, addr = infos[0]
    return family, addr


def _not_here(host: str) -> str:
    return (f"--host {host!r}: not an address of this machine; use 127.0.0.1 (this machine "
            "only), 0.0.0.0 (every network interface) or one of its own addresses (ip addr)")


def bind(host: str, port: int, **app) -> PageServer:
    """A :class:`PageServer` listening on ``host``:``port`` (not yet serving).

    Raises:
        ConfigError: the port is in use or needs root, or ``host`` is not of this machine.
    """
    if not host.strip():
        raise ConfigError(_not_here(host))
    family, addr = resolve(host, port)
    try:
        return PageServer(addr, family, **app)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: already in use on {host} (another fer-edge "
                              "serve, or another server); stop it or choose another port, "
                              f"e.g. --port {port + 1 if port < 65535 else 8080}") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"--port {port}: ports below 1024 need root; use e.g. "
                              "--port 8080") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EINVAL):
            raise ConfigError(_not_here(host)) from None
        raise
