"""Make the packaged sample clip ``fer_edge/assets/sample_astronaut.mp4``.

Source: scikit-image's ``astronaut`` photo (Eileen Collins, NASA; public domain), bundled with
scikit-image. The top 384 rows (the face and shoulders) are scaled to 640x480 and moved with
a slow pan and zoom, 4 s at 15 fps, written with OpenCV's mp4v codec.

    pip install scikit-image && python demo/make_sample_clip.py
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2

OUT = Path(__file__).resolve().parents[1] / "fer_edge" / "assets" / "sample_astronaut.mp4"
W, H, FPS, SECONDS = 640, 480, 15, 4


def main() -> None:
    from skimage.data import astronaut

    base = cv2.cvtColor(astronaut()[:384], cv2.COLOR_RGB2BGR)
    base = cv2.resize(base, (W, H), interpolation=cv2.INTER_AREA)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(OUT), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    n = FPS * SECONDS
    for i in range(n):
        t = i / n
        zoom = 1.0 + 0.12 * math.sin(2 * math.pi * t)
        dx, dy = 50 * math.sin(2 * math.pi * t), 20 * math.sin(4 * math.pi * t)
        m = cv2.getRotationMatrix2D((W / 2, H / 2), 0.0, zoom)
        m[:, 2] += (dx, dy)
        writer.write(cv2.warpAffine(base, m, (W, H), borderMode=cv2.BORDER_REFLECT))
    writer.release()
    cap = cv2.VideoCapture(str(OUT))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB, {frames} frames, {W}x{H}, {FPS} fps)")


if __name__ == "__main__":
    main()
