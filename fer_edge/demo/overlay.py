"""Drawing the results onto the frame. Light tier."""

from __future__ import annotations

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GREEN, _WHITE, _BLACK = (80, 200, 80), (255, 255, 255), (0, 0, 0)


def draw(frame: np.ndarray, tracks, labels: tuple[str, ...], hud: str = "",
         badge: str = "") -> np.ndarray:
    """Draw boxes, labels, confidences, the main face's class bars and a status line.

    Args:
        frame: (H, W, 3) uint8 BGR, drawn on in place.
        tracks: visible :class:`~fer_edge.demo.tracking.Track` objects.
        labels: class names in output order.
        hud: status text (FPS, per-stage ms).
        badge: a note drawn at the top right (e.g. "personal profile" when one is active).

    Returns:
        The same frame.
    """
    main = max(tracks, key=lambda t: t.box[2] * t.box[3], default=None)
    for t in tracks:
        x, y, w, h = t.box
        cv2.rectangle(frame, (x, y), (x + w, y + h), _GREEN, 2)
        if t.probs is not None:
            text = f"#{t.id} {labels[t.label]} {t.probs[t.label]:.0%}"
            cv2.putText(frame, text, (x, max(12, y - 6)), _FONT, 0.55, _BLACK, 3, cv2.LINE_AA)
            cv2.putText(frame, text, (x, max(12, y - 6)), _FONT, 0.55, _WHITE, 1, cv2.LINE_AA)
    if main is not None and main.probs is not None:
        for k, (lab, p) in enumerate(zip(labels, main.probs)):
            y0 = 28 + 16 * k
            cv2.rectangle(frame, (8, y0 - 10), (8 + int(100 * p), y0 + 2),
                          _GREEN if k == main.label else (160, 160, 160), -1)
            cv2.putText(frame, f"{lab} {p:.2f}", (114, y0), _FONT, 0.4, _WHITE, 1, cv2.LINE_AA)
    if badge:
        (tw, _), _ = cv2.getTextSize(badge, _FONT, 0.5, 1)
        x0 = frame.shape[1] - tw - 10
        cv2.putText(frame, badge, (x0, 20), _FONT, 0.5, _BLACK, 3, cv2.LINE_AA)
        cv2.putText(frame, badge, (x0, 20), _FONT, 0.5, (80, 220, 255), 1, cv2.LINE_AA)
    if hud:
        cv2.putText(frame, hud, (8, frame.shape[0] - 10), _FONT, 0.45, _BLACK, 3, cv2.LINE_AA)
        cv2.putText(frame, hud, (8, frame.shape[0] - 10), _FONT, 0.45, _WHITE, 1, cv2.LINE_AA)
    return frame


def has_gui() -> bool:
    """Whether this OpenCV build can open a window (headless wheels cannot)."""
    try:
        info = cv2.getBuildInformation()
    except cv2.error:
        return False
    gui = [ln for ln in info.splitlines() if ln.strip().startswith("GUI:")]
    return bool(gui) and "NONE" not in gui[0].upper()
