"""``fer-edge serve``: events over HTTP match --log, auth, traversal, bad input, stream cap,
a lost camera, and the page in a real (headless Chromium) browser."""

from __future__ import annotations

import csv
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_edge.cli import main
from fer_edge.demo.config import DemoConfig
from fer_edge.demo.sources import VideoSource
from fer_edge.errors import SourceError
from fer_edge.serve.auth import TokenCheck, is_loopback
from fer_edge.serve.routes import ROUTES

ROOT = Path(__file__).resolve().parents[1]
STREAMS = ("/stream.mjpg", "/events")


# -- helpers ---------------------------------------------------------------------------------
class Served:
    """A ``fer-edge serve`` process; ``url`` as it printed it (with the token, if any)."""

    def __init__(self, *args: str, timeout: float = 60.0):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "fer_edge.cli", "serve", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, cwd=ROOT)
        t_end, line = time.time() + timeout, ""
        while time.time() < t_end:
            line = self.proc.stdout.readline()
            if "open http" in line or (not line and self.proc.poll() is not None):
                break
        m = re.search(r"open (http://\S+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"serve did not start: {line!r} {self.proc.stderr.read()}")
        self.url, self.banner = m.group(1), line
        port = int(re.search(r":(\d+)/", self.url).group(1))
        self.port = port
        self.token = (re.search(r"token=([^&\s]+)", self.url) or [None, None])[1]

    def stop(self, sig=signal.SIGTERM, timeout: float = 20.0) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("serve did not stop on " + str(sig)) from None
        return self.proc.returncode, out, err


def get(port: int, path: str, headers: dict | None = None, stream: bool = False):
    """(status, headers, body) of a GET on loopback; for a stream, the body is not read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = b"" if stream and r.status == 200 else r.read()
    status, hdrs = r.status, dict(r.getheaders())
    r.close()  # the response holds the socket too
    conn.close()
    return status, hdrs, body


def read_events(port: int, query: str, want: int, timeout: float = 60.0) -> list[dict]:
    """Read ``/events`` until ``want`` face events arrived (or ``timeout``)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(f"GET /events{query} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    buf, events, t_end = b"", [], time.time() + timeout
    while len(events) < want and time.time() < t_end:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.decode().splitlines()
                          if ": " in line and not line.startswith(":"))
            if fields.get("event") == "face":
                events.append(json.loads(fields["data"]))
    sock.close()
    return events


def wait_for_frames(port: int, n: int, timeout: float = 60.0) -> int:
    """Poll ``/stats.json`` until the loop has made more than ``n`` - 1 frames (or
    ``timeout``); the frame count."""
    t_end, frames = time.time() + timeout, 0
    while time.time() < t_end:
        frames = json.loads(get(port, "/stats.json")[2])["frames"]
        if frames >= n:
            break
        time.sleep(0.1)
    return frames


@pytest.fixture(scope="module")
def loopback_server():
    """One server on the default host (no token), 2 streams at most, the sample clip looped."""
    s = Served("--video", "sample", "--loop", "--port", "0", "--max-streams", "2")
    wait_for_frames(s.port, 1)  # a slow machine (an emulated Pi) needs a while for frame 1
    yield s
    code, _, err = s.stop()
    assert code == 0, err[-2000:]


# -- the token check, in process -----------------------------------------------------------
def test_token_check_places_and_constant_time_compare():
    check = TokenCheck("s3cret-token-0123456789")
    assert check.allows("token=s3cret-token-0123456789", None)
    assert check.allows("", "Bearer s3cret-token-0123456789")
    assert check.allows("a=1&token=s3cret-token-0123456789", "bearer s3cret-token-0123456789")
    for query, auth in (("", None), ("token=", None), ("token=s3cret", None),
                        ("token=s3cret-token-0123456789x", None), ("tok=s3cret-token-0123456789",
                                                                   None),
                        ("", "s3cret-token-0123456789"), ("", "Basic s3cret-token-0123456789"),
                        ("token=s3cret-token-0123456789&token=x", None),
                        ("token=s3cret-token-0123456789", "Bearer wrong")):
        assert not check.allows(query, auth), (query, auth)
    assert TokenCheck(None).allows("", None)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("::")


# -- over HTTP -----------------------------------------------------------------------------
def test_events_arrive_parse_and_match_the_log(tmp_path):
    log = tmp_path / "faces.csv"
    s = Served("--video", "sample", "--loop", "--port", "0", "--log", str(log))
    try:
        events = read_events(s.port, "", want=15)
    finally:
        code, out, err = s.stop()
    assert code == 0, err[-2000:]
    assert "stopped (Ctrl-C or SIGTERM)" in out
    assert len(events) >= 15
    with log.open() as f:
        reader = csv.DictReader(f)
        rows = {(int(r["frame"]), int(r["face_id"])): r for r in reader}
    labels = [k[2:] for k in reader.fieldnames if k.startswith("p_")]
    assert len(labels) == 7
    for ev in events:
        row = rows[(ev["frame"], ev["face_id"])]  # every event is a row of the log
        assert ev["label"] == row["label"] and ev["raw_label"] == row["raw_label"]
        assert ev["box"] == [int(row[k]) for k in "xywh"]
        assert abs(ev["time"] - float(row["timestamp"])) < 1e-3
        assert np.allclose([ev["probs"][k] for k in labels],
                           [float(row[f"p_{k}"]) for k in labels], atol=1e-5)
        assert abs(sum(ev["probs"].values()) - 1) < 1e-2  # int8 outputs: not exactly 1
    frames = [ev["frame"] for ev in events]
    assert frames == sorted(frames) and len(set(frames)) > 5
    with pytest.raises(OSError):  # the port is closed after SIGTERM
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()


def test_loopback_default_needs_no_token_and_serves_every_route(loopback_server):
    port = loopback_server.port
    assert loopback_server.token is None
    status, hdrs, body = get(port, "/")
    assert status == 200 and b"/events" in body and b"__QUERY__" not in body
    assert get(port, "/app.js")[0] == 200 and get(port, "/style.css")[0] == 200
    status, _, body = get(port, "/stats.json")
    stats = json.loads(body)
    assert status == 200 and stats["detector"] == "auto" and stats["profile"] == "none"
    assert stats["source_state"] == "running" and len(stats["labels"]) == 7
    status, hdrs, body = get(port, "/snapshot.jpg")
    assert status == 200 and hdrs["Content-Type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (480, 640, 3)
    assert hdrs.get("Server") == "fer-edge"


@pytest.mark.parametrize("path", [
    "/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E%2Fapp.js", "/..%2fapp.js",
    "/static/app.js", "/index.html", "/app.js/../cli.py", "//etc/passwd", "/style.css%00",
    "/./app.js", "/stream.mjpg/..", "/serve/static/index.html", "/favicon.ico"])
def test_paths_outside_the_whitelist_are_404(loopback_server, path):
    status, _, body = get(loopback_server.port, path)
    assert status == 404 and body == b"not found\n"


def test_stream_cap_refuses_clearly_and_a_stalled_client_does_not_stop_the_loop(loopback_server):
    port = loopback_server.port
    held = []
    for path in ("/stream.mjpg", "/stream.mjpg"):  # two streams that never read (stalled)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        held.append((conn, conn.getresponse()))
        assert held[-1][1].status == 200
    status, hdrs, body = get(port, "/stream.mjpg")
    assert status == 503 and b"--max-streams" in body and hdrs.get("Retry-After")
    f0 = json.loads(get(port, "/stats.json")[2])["frames"]
    assert wait_for_frames(port, f0 + 11) > f0 + 10  # the loop runs on
    for conn, r in held:
        r.close()
        conn.close()
    t_end = time.time() + 10
    while time.time() < t_end:  # a freed slot is taken back once the server notices
        status = get(port, "/stream.mjpg", stream=True)[0]
        if status == 200:
            break
        time.sleep(0.3)
    assert status == 200


def test_off_loopback_every_request_needs_the_token(tmp_path):
    s = Served("--video", "sample", "--loop", "--host", "0.0.0.0", "--port", "0")
    try:
        token = s.token
        assert token and len(token) >= 32
        wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
        misplaced = [{"Cookie": f"token={token}"}, {"X-Token": token},
                     {"Authorization": token}, {"Authorization": f"Basic {token}"}]
        for path in (*ROUTES, "/nope", "/../etc/passwd"):
            for query, headers in (("", {}), (f"?token={wrong}", {}), ("?token=", {}),
                                   ("", {"Authorization": f"Bearer {wrong}"}),
                                   *(("", h) for h in misplaced), (f"?tok={token}", {})):
                status, hdrs, body = get(s.port, path + query, headers)
                assert status == 401 and body == b"unauthorized\n", (path, query, headers)
            status = get(s.port, path + f"?token={token}", stream=path in STREAMS)[0]
            assert status == (404 if path.startswith(("/nope", "/..")) else 200), path
            status = get(s.port, path, {"Authorization": f"Bearer {token}"},
                         stream=path in STREAMS)[0]
            assert status in (200, 404)
        page = get(s.port, f"/?token={token}")[2]
        assert f'src="/app.js?token={token}"'.encode() in page  # the page's own requests
    finally:
        code, out, err = s.stop()
    assert code == 0, err[-2000:]
    assert s.banner.count(token) == 1 and token not in out + err  # printed once, with the URL


def test_token_file_is_required_and_checked(tmp_path):
    f = tmp_path / "token"
    f.write_text("abcdefghijklmnop-0123456789\n")
    f.chmod(0o600)
    s = Served("--video", "sample", "--loop", "--port", "0", "--token-file", str(f))
    try:
        assert s.token == "abcdefghijklmnop-0123456789"
        assert get(s.port, "/stats.json")[0] == 401
        assert get(s.port, "/stats.json", {"Authorization": f"Bearer {s.token}"})[0] == 200
    finally:
        assert s.stop()[0] == 0


# -- bad input: one line, exit 2, before the camera opens -----------------------------------
def _bad(argv, capsys) -> str:
    code = main(["serve", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_input_one_line_exit_2(tmp_path, capsys):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        err = _bad(["--video", "sample", "--port", str(port), "--log", str(tmp_path / "a.csv")],
                   capsys)
        assert "in use" in err and "--port" in err
        assert not (tmp_path / "a.csv").exists()  # nothing written
    finally:
        busy.close()
    assert "--port" in _bad(["--video", "sample", "--port", "70000"], capsys)
    assert "--port" in _bad(["--video", "sample", "--port", "-1"], capsys)
    err = _bad(["--video", "sample", "--host", "203.0.113.7"], capsys)
    assert "not an address of this machine" in err
    missing = tmp_path / "no-token"
    assert "not found" in _bad(["--video", "sample", "--token-file", str(missing)], capsys)
    f = tmp_path / "token"
    f.write_text("abcdefghijklmnop-0123456789")
    f.chmod(0o644)
    assert "chmod 600" in _bad(["--video", "sample", "--token-file", str(f)], capsys)
    f.chmod(0o600)
    f.write_text("short")
    assert "16-512" in _bad(["--video", "sample", "--token-file", str(f)], capsys)
    assert "--loop" in _bad(["--camera", "0", "--loop"], capsys)
    assert "--max-streams" in _bad(["--video", "sample", "--max-streams", "0"], capsys)


# -- a camera that disappears ---------------------------------------------------------------
class _DyingCamera:
    """A live source that gives 30 frames of the sample clip, then fails like an unplugged
    camera."""

    live, fps, name, current, dropped, skipped, independent = (True, 0.0, "camera 0",
                                                               "camera 0", 0, 0, False)

    def __init__(self):
        self._video = VideoSource("sample")

    def __iter__(self):
        for i, (frame, _) in enumerate(self._video):
            if i == 30:
                raise SourceError("camera 0 stopped delivering frames (OSError: device gone); "
                                  "check its cable and power")
            yield frame, i / 30

    def close(self):
        self._video.close()


def test_a_lost_camera_is_reported_on_the_page_and_in_the_terminal(capsys):
    from fer_edge.serve.app import App
    from fer_edge.serve.cli import report
    from fer_edge.serve.config import ServeConfig

    app = App(DemoConfig(camera=0, headless=True), ServeConfig(port=0), None)
    try:
        app.load(_DyingCamera())
        app.start()
        stats, lost = app.run_loop()
        assert stats is None and "device gone" in str(lost)
        s = json.loads(get(app.port, "/stats.json")[2])
        assert s["source_state"] == "lost" and "device gone" in s["source_message"]
        assert s["live"] is True and s["frames"] > 0
    finally:
        app.close()
    assert report(stats, lost) == 1
    assert "device gone" in capsys.readouterr().err


# -- the page in a real browser -------------------------------------------------------------
def test_page_in_headless_chromium(tmp_path):
    import cdp

    binary = cdp.find_chromium()
    if binary is None:
        pytest.skip("no Chromium found (apt-get install -y chromium); .ci/run installs it")
    s = Served("--video", "sample", "--loop", "--port", "0")
    browser = None
    try:
        browser = cdp.Chromium(binary, size=(1100, 1000))
        browser.open(s.url)
        state, t_end = {}, time.time() + 30
        while time.time() < t_end:
            state = json.loads(browser.evaluate("JSON.stringify(document.body.dataset)") or "{}")
            if (int(state.get("faces", 0)) > 0 and int(state.get("chartPoints", 0)) > 0 and
                    state.get("video") == "on" and int(state.get("events", 0)) > 0):
                break
            time.sleep(0.5)
        assert int(state.get("faces", 0)) > 0, state
        assert int(state.get("chartPoints", 0)) > 0, state
        assert state.get("video") == "on" and int(state.get("events", 0)) > 0, state
        assert state.get("source") == "running"
        label = browser.evaluate("document.querySelector('.face .head span').textContent")
        assert re.fullmatch(r"#\d+ (angry|disgust|fear|happy|sad|surprise|neutral)", label)
        shot = tmp_path / "page.png"
        browser.screenshot(str(shot))
    finally:
        if browser is not None:
            browser.close()
        s.stop()
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[1] >= 1000
    green = np.all(np.abs(img.astype(int) - (80, 200, 80)) < 30, axis=2)  # the face box
    assert green.sum() > 200, "no face box drawn in the video"


# -- the second hardening sweep (issue 34) ---------------------------------------------------
def test_token_file_that_is_a_folder_is_named_so(tmp_path, capsys):
    from cli_sweep import assert_refused

    assert_refused(["serve", "--video", "sample", "--token-file", tmp_path], capsys, tmp_path,
                   "is a folder", "the file holding the token")


@pytest.mark.parametrize("bad", ["profile", "detector"])
def test_bad_profile_or_detector_refused_before_the_address_is_printed(tmp_path, capsys, bad):
    from cli_sweep import run_cli, snapshot

    (tmp_path / "notes.profile").write_text("not a profile")
    extra = (["--profile", tmp_path / "notes.profile"] if bad == "profile" else
             ["--detector", tmp_path / "missing_yunet.onnx"])
    before = snapshot(tmp_path)
    rc, err, out = run_cli(["serve", "--video", "sample", "--port", "0", *extra], capsys)
    assert rc == 2 and "open http" not in out, (out, err)
    assert len(err) == 1 and err[0].startswith("fer-edge serve: error: "), err
    assert ("not a fer-edge profile" if bad == "profile" else "YuNet model not found") in err[0]
    assert snapshot(tmp_path) == before


def _serve_app(max_streams: int = 1):
    from fer_edge.serve.app import App
    from fer_edge.serve.config import ServeConfig

    return App(DemoConfig(video="sample", headless=True),
               ServeConfig(port=0, max_streams=max_streams), None)


def test_a_connection_flood_gets_503_not_a_silent_close(monkeypatch):
    import fer_edge.serve.routes as routes

    # silent clients are dropped after REQUEST_TIMEOUT_S: longer than filling every slot takes
    # on a loaded machine, so the flood below really meets a full server
    monkeypatch.setattr(routes, "REQUEST_TIMEOUT_S", 120.0)
    app, idle = _serve_app(), []
    try:
        app.server.start()
        for _ in range(app.server.max_connections):  # each holds a handler thread, silent
            idle.append(socket.create_connection(("127.0.0.1", app.port), timeout=30))
        t_end = time.time() + 60
        while len(app.server._conns) < app.server.max_connections and time.time() < t_end:
            time.sleep(0.05)
        assert len(app.server._conns) == app.server.max_connections
        more = socket.create_connection(("127.0.0.1", app.port), timeout=30)
        more.sendall(b"GET /stats.json HTTP/1.0\r\n\r\n")
        answer = more.recv(4096)
        more.close()
        assert answer.startswith(b"HTTP/1.0 503 ") and b"too many connections" in answer
    finally:
        for s in idle:
            s.close()
        app.close()


def test_a_silent_client_is_dropped_after_the_request_timeout(monkeypatch):
    import fer_edge.serve.routes as routes

    monkeypatch.setattr(routes, "REQUEST_TIMEOUT_S", 1.0)
    app = _serve_app()
    try:
        app.server.start()
        silent = socket.create_connection(("127.0.0.1", app.port), timeout=30)
        t0 = time.time()
        assert silent.recv(100) == b""  # closed by the server, freeing its slot
        assert time.time() - t0 < 20
        silent.close()
    finally:
        app.close()


@pytest.mark.parametrize("recipe, demo_width, port, max_streams", [
    ("[serve]\nport = 9123\nmax_streams = 3\n", None, 9123, 3),
    ("[demo]\ndetect_width = 256\n", 256, 8080, 8),
    ("[demo]\ndetect_width = 256\n[serve]\nport = 9124\n", 256, 9124, 8),
])
def test_serve_reads_its_own_table_and_the_demos(tmp_path, recipe, demo_width, port,
                                                 max_streams):
    """``serve --config`` reads ``[serve]`` (its options) and ``[demo]`` (the loop's); either
    table alone is a valid recipe; flags still win."""
    from fer_edge.cli import build_parser
    from fer_edge.serve.cli import configs

    toml = tmp_path / "serve.toml"
    toml.write_text(recipe)
    cfg, scfg = configs(build_parser().parse_args(["serve", "--config", str(toml)]))
    assert (scfg.port, scfg.max_streams) == (port, max_streams)
    assert cfg.detect_width == (demo_width or DemoConfig().detect_width)
    _, scfg = configs(build_parser().parse_args(["serve", "--config", str(toml), "--port", "7"]))
    assert scfg.port == 7


def test_serve_refuses_an_unknown_key_in_its_table(tmp_path, capsys):
    toml = tmp_path / "serve.toml"
    toml.write_text("[serve]\nprot = 9000\n")
    assert main(["serve", "--config", str(toml)]) == 2
    err = capsys.readouterr().err
    assert "prot" in err and "port" in err and "Traceback" not in err
