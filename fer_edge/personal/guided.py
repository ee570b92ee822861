"""The guided enrolment session (``fer-edge enroll --camera N`` / ``--video F``). Light tier.

The overlay asks for one expression at a time ("show: surprise"), counts down, then keeps good
frames of the largest face (a face found, sharp enough, not a near-copy of a frame already
kept) while a bar fills. ``s`` skips an expression, ``q``/Esc cancels. Headless (``--headless``
with ``--video``, used by the tests), there is no countdown and no time limit: the frames are
taken in order, for each expression in turn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from fer_edge.errors import SourceError

log = logging.getLogger(__name__)

#: the order expressions are asked in (those the model has)
ORDER = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear")
#: frames kept per expression
PER_EXPRESSION = 5
#: seconds of countdown before frames are kept, and seconds before an expression is given up
COUNTDOWN_S = 3.0
LIMIT_S = 12.0
#: a crop is sharp enough when the variance of its Laplacian (48x48 grey) reaches this
#: (tfeid_dev crops: 1240-2360; one of them from the photo blurred by a 15 px Gaussian: 445)
BLUR_MIN = 400.0
#: a crop whose mean absolute difference to a kept crop is below this (grey levels) is a copy
DUPLICATE_MAX = 3.0

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Session:
    """What a guided session kept.

    Attributes:
        crops: kept (s, s) uint8 grey crops; y: their class ids; skipped: expressions given
        up or skipped; rejected: {"no_face", "blurred", "duplicate"} frame counts.
    """

    crops: list = field(default_factory=list)
    y: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    rejected: dict = field(default_factory=lambda: {"no_face": 0, "blurred": 0,
                                                    "duplicate": 0})


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a (s, s) uint8 grey crop (low = blurred)."""
    return float(cv2.Laplacian(crop, cv2.CV_64F).var())


def is_duplicate(crop: np.ndarray, kept: list) -> bool:
    """Whether ``crop`` is a near-copy (mean |difference| < DUPLICATE_MAX) of one in ``kept``."""
    c = crop.astype(np.int16)
    return any(np.abs(c - k.astype(np.int16)).mean() < DUPLICATE_MAX for k in kept)


def judge(finder, frame: np.ndarray, kept: list) -> tuple[str, object]:
    """("ok" | "no_face" | "blurred" | "duplicate", the largest Face or None) for a frame."""
    faces = finder(frame)
    if not faces:
        return "no_face", None
    face = faces[0]
    if sharpness(face.crop) < BLUR_MIN:
        return "blurred", face
    if is_duplicate(face.crop, kept):
        return "duplicate", face
    return "ok", face


def draw_prompt(frame: np.ndarray, expression: str, countdown: float | None, kept: int,
                per: int, face) -> None:
    """Draw the prompt, the countdown or the progress bar, and the face box (in place)."""
    h, w = frame.shape[:2]
    text = f"show: {expression}" + (f"  {int(np.ceil(countdown))}" if countdown else "")
    for colour, thick in (((0, 0, 0), 4), ((255, 255, 255), 2)):
        cv2.putText(frame, text, (12, 36), _FONT, 1.0, colour, thick, cv2.LINE_AA)
    cv2.rectangle(frame, (12, 48), (w - 12, 62), (200, 200, 200), 1)
    cv2.rectangle(frame, (12, 48), (12 + int((w - 24) * kept / per), 62), (80, 200, 80), -1)
    cv2.putText(frame, "s: skip  q: cancel", (12, h - 12), _FONT, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    if face is not None:
        x, y, bw, bh = face.box
        cv2.rectangle(frame, (x, y), (x + bw, y + bh), (80, 200, 80), 2)


def _key(window: bool) -> str:
    if not window:
        return ""
    k = cv2.waitKey(1) & 0xFF
    return {ord("s"): "skip", ord("q"): "quit", 27: "quit"}.get(k, "")


def run_session(source, finder, labels: tuple[str, ...], per: int = PER_EXPRESSION,
                headless: bool = True) -> Session:
    """Ask for each expression in :data:`ORDER` and keep ``per`` good frames of each.

    Args:
        source: yields (frame (H, W, 3) uint8 BGR, timestamp s), as the demo's sources.
        finder: a :class:`~fer_edge.faces.FaceFinder`.
        labels: the model's class names (class ids index into it).
        per: frames kept per expression.
        headless: no window, no countdown, no time limit.

    Raises:
        SourceError: the source ended before every expression was asked (nothing kept).
        KeyboardInterrupt: cancelled with q/Esc.
    """
    order = [e for e in ORDER if e in labels] + [e for e in labels if e not in ORDER]
    frames = iter(source)
    session = Session()
    for n, expression in enumerate(order):
        kept = _one_expression(frames, finder, expression, per, headless, session)
        if kept is None:
            raise SourceError(f"{source.name} ended during '{expression}' ({n} of "
                              f"{len(order)} expressions done); nothing was written: "
                              "check the camera (cable, power, another program) or use a "
                              "longer video")
        if not kept:
            session.skipped.append(expression)
        session.crops += kept
        session.y += [labels.index(expression)] * len(kept)
        log.info("%s: %d frame(s) kept (%d of %d expressions done)", expression, len(kept),
                 n + 1, len(order))
    return session


def _one_expression(frames, finder, expression: str, per: int, headless: bool,
                    session: Session) -> list | None:
    """Kept crops for one expression ([] when skipped or timed out), None if the source
    ended first."""
    kept, start = [], None
    for frame, ts in frames:
        start = ts if start is None else start
        left = 0.0 if headless else COUNTDOWN_S - (ts - start)
        face = None
        if left <= 0:
            verdict, face = judge(finder, frame, kept)
            if verdict == "ok":
                kept.append(face.crop)
            else:
                session.rejected[verdict] += 1
        if not headless:
            draw_prompt(frame, expression, left if left > 0 else None, len(kept), per, face)
            cv2.imshow("fer-edge enroll", frame)
        key = _key(not headless)
        if key == "quit":
            raise KeyboardInterrupt
        if len(kept) >= per or key == "skip" or (not headless and ts - start > LIMIT_S):
            return kept
    return None
