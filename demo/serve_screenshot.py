"""Make ``demo/serve_screenshot.png``: the ``fer-edge serve`` page in headless Chromium.

Starts ``fer-edge serve --video sample --loop`` on a free loopback port, opens the page through
the DevTools protocol (``tests/cdp.py``, standard library only), waits until it shows a face,
events and timeline points, takes a screenshot and shrinks it to ``--width`` pixels.

    python demo/serve_screenshot.py [--out demo/serve_screenshot.png] [--wait 40]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import cdp  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "demo" / "serve_screenshot.png"))
    ap.add_argument("--wait", type=float, default=40.0,
                    help="seconds of timeline to gather before the screenshot")
    ap.add_argument("--width", type=int, default=760, help="width of the saved PNG")
    args = ap.parse_args()
    binary = cdp.find_chromium()
    if binary is None:
        sys.exit("no Chromium found: apt-get install -y chromium")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "fer_edge.cli", "serve", "--video",
                               "sample", "--loop", "--port", "0"], stdout=subprocess.PIPE,
                              text=True, env=env)
    browser = None
    try:
        line = server.stdout.readline()
        url = re.search(r"open (http://\S+)", line).group(1)
        browser = cdp.Chromium(binary, size=(1000, 900))
        browser.open(url)
        time.sleep(args.wait)
        state = json.loads(browser.evaluate("JSON.stringify(document.body.dataset)"))
        print("page state:", state)
        with tempfile.TemporaryDirectory() as tmp:
            shot = Path(tmp) / "page.png"
            browser.screenshot(str(shot))
            img = cv2.imread(str(shot))
        h = round(img.shape[0] * args.width / img.shape[1])
        small = cv2.resize(img, (args.width, h), interpolation=cv2.INTER_AREA)
        cv2.imwrite(args.out, small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} kB)")
    finally:
        if browser is not None:
            browser.close()
        server.send_signal(signal.SIGTERM)
        server.wait(20)


if __name__ == "__main__":
    main()
