"""``ServeConfig``: the options ``fer-edge serve`` adds to the demo's. Light tier."""

from __future__ import annotations

from dataclasses import dataclass

from fer_edge.config import opt

#: the address served when --host is not given: this machine only, no token needed
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServeConfig:
    """``fer-edge serve``: where and how the page is served (the demo options come from
    :class:`~fer_edge.demo.config.DemoConfig`)."""

    SECTION = "serve"

    host: str = opt(DEFAULT_HOST, "address to listen on; anything but a loopback address "
                    "(e.g. 0.0.0.0 for every interface) requires the access token")
    port: int = opt(8080, "TCP port, 1-65535 (0 = a free port chosen by the system)",
                    ge=0, le=65535)
    token_file: str = opt("", "file holding the access token (16+ characters of A-Z a-z 0-9 "
                          ". _ ~ -; readable by its owner only, chmod 600); default a random "
                          "token per start, printed once with the URL")
    max_streams: int = opt(8, "most video streams and most event streams open at once (each); "
                           "one more is refused with 503", ge=1, le=1000)
    stream_fps: float = opt(10.0, "most JPEG frames per second encoded for the video stream "
                            "(each costs CPU beside the loop; only while a stream is ready for "
                            "one)", gt=0, le=120)
    jpeg_quality: int = opt(75, "JPEG quality of the stream and snapshot, 1-100", ge=1, le=100)
    loop: bool = opt(False, "repeat a --video file until stopped (a kiosk, or a test)")
