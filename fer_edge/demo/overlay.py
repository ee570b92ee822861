"""Drawing the results onto the frame. Light tier."""

from __future__ import annotations

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GREEN, _WHITE, _BLACK = (80, 200, 80), (255, 255, 255), (0, 0, 0)


#: class-bar panel: margin from the frame edge, row height, bar length at p = 1, text width
_PANEL_MARGIN, _ROW, _BAR, _TEXT_W = 8, 16, 100, 92
#: a face label's height above its box (pixels), kept clear of the panel
_LABEL_H = 22
#: the status line's height at the bottom of the frame
_HUD_H = 26


def panel_size(n_classes: int) -> tuple[int, int]:
    """(width, height) of the class-bar panel: a title row and one row per class."""
    return _BAR + 6 + _TEXT_W, _ROW * (n_classes + 1) + 4


def place_panel(frame_shape: tuple[int, ...], boxes, size: tuple[int, int],
                hud: bool = True) -> tuple[int, int]:
    """Top-left corner of the class-bar panel: the frame corner whose panel covers the least
    of the faces and their labels (each box plus :data:`_LABEL_H` above it); on a tie the
    first of top-left, top-right, bottom-left, bottom-right. The bottom corners stay above
    the status line.

    Args:
        frame_shape: (H, W, ...) of the frame.
        boxes: (x, y, w, h) face boxes in frame pixels.
        size: (width, height) of the panel.
        hud: a status line is drawn at the bottom.
    """
    h, w = frame_shape[:2]
    pw, ph = size
    m = _PANEL_MARGIN
    bottom = h - ph - m - (_HUD_H if hud else 0)
    corners = [(m, m), (w - pw - m, m), (m, bottom), (w - pw - m, bottom)]

    def covered(corner: tuple[int, int]) -> float:
        x0, y0 = corner
        area = 0.0
        for bx, by, bw, bh in boxes:
            top = by - _LABEL_H
            iw = min(x0 + pw, bx + bw) - max(x0, bx)
            ih = min(y0 + ph, by + bh) - max(y0, top)
            area += max(0, iw) * max(0, ih)
        return area

    return min(corners, key=covered)


def _draw_panel(frame: np.ndarray, track, labels: tuple[str, ...], origin: tuple[int, int]):
    """The main face's class bars with a "#id" title, on a darkened patch at ``origin``."""
    x0, y0 = origin
    pw, ph = panel_size(len(labels))
    h, w = frame.shape[:2]
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + pw), min(h, y0 + ph)
    if xb > xa and yb > ya:
        frame[ya:yb, xa:xb] = (frame[ya:yb, xa:xb] * 0.45).astype(np.uint8)
    cv2.putText(frame, f"#{track.id}", (x0 + 4, y0 + _ROW - 3), _FONT, 0.45, _WHITE, 1,
                cv2.LINE_AA)
    for k, (lab, p) in enumerate(zip(labels, track.probs)):
        yr = y0 + _ROW * (k + 2)
        cv2.rectangle(frame, (x0 + 4, yr - 11), (x0 + 4 + int(_BAR * p), yr + 1),
                      _GREEN if k == track.label else (160, 160, 160), -1)
        cv2.putText(frame, f"{lab} {p:.2f}", (x0 + _BAR + 10, yr), _FONT, 0.4, _WHITE, 1,
                    cv2.LINE_AA)


def draw(frame: np.ndarray, tracks, labels: tuple[str, ...], hud: str = "") -> np.ndarray:
    """Draw boxes, labels, confidences, the main face's class bars and a status line.

    The class bars of the main (largest) face go in the frame corner that hides the least of
    the faces and their labels (:func:`place_panel`), titled with that face's "#id".

    Args:
        frame: (H, W, 3) uint8 BGR, drawn on in place.
        tracks: visible :class:`~fer_edge.demo.tracking.Track` objects.
        labels: class names in output order.
        hud: status text (FPS, per-stage ms).

    Returns:
        The same frame.
    """
    main = max(tracks, key=lambda t: t.box[2] * t.box[3], default=None)
    if main is not None and main.probs is not None:
        size = panel_size(len(labels))
        _draw_panel(frame, main, labels,
                    place_panel(frame.shape, [t.box for t in tracks], size, bool(hud)))
    for t in tracks:
        x, y, w, h = t.box
        cv2.rectangle(frame, (x, y), (x + w, y + h), _GREEN, 2)
        if t.probs is not None:
            text = f"#{t.id} {labels[t.label]} {t.probs[t.label]:.0%}"
            cv2.putText(frame, text, (x, max(12, y - 6)), _FONT, 0.55, _BLACK, 3, cv2.LINE_AA)
            cv2.putText(frame, text, (x, max(12, y - 6)), _FONT, 0.55, _WHITE, 1, cv2.LINE_AA)
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
