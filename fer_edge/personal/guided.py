"""The guided enrolment session (``fer-edge enroll --camera N`` / ``--picamera`` / ``--video F``).
Light tier.

One fixed schedule, live or recorded: for each expression in :data:`ORDER` in turn, the
overlay asks for it ("show: surprise") and counts down :data:`COUNTDOWN_S` seconds (time to
change face), then for :data:`HOLD_S` seconds keeps good frames of the largest face (a face
found, sharp enough, not a near-copy of a frame already kept), at most ``per``, spread over the
hold (the j-th from j * HOLD_S / per seconds into it), while a bar fills. So expression k is
asked from ``k * SLOT_S`` to ``(k + 1) * SLOT_S`` seconds after the start (``s`` skips to the
next one at once, dropping its frames; ``q``/Esc cancels). A video (``--video F``) is run
without a window, on its own clock (its frame count / its FPS), so a recording of somebody
following the prompts, or following :func:`schedule` by hand, gives the same frames.
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
#: seconds of countdown before frames are kept (to change face), then seconds of holding the
#: expression while frames are kept; each expression takes SLOT_S
COUNTDOWN_S = 3.0
HOLD_S = 4.0
SLOT_S = COUNTDOWN_S + HOLD_S
#: a crop is sharp enough when the variance of its Laplacian (48x48 grey) reaches this
#: (tfeid_dev crops: 1240-2360; one of them from the photo blurred by a 15 px Gaussian: 445)
BLUR_MIN = 400.0
#: a crop is a near-copy of a kept one when, both shrunk to DUPLICATE_SIZE px, their mean
#: absolute difference is below DUPLICATE_MAX grey levels (shrinking ignores the pixel jitter
#: of detection and alignment: one tfeid_dev photo in two frames of an MJPG clip differs by
#: 3.3 at 12 px, two photos of one person's expression by 2.0-7.7, median 7.7)
DUPLICATE_SIZE = 12
DUPLICATE_MAX = 2.0

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


def _small(crop: np.ndarray) -> np.ndarray:
    size = (DUPLICATE_SIZE, DUPLICATE_SIZE)
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.int16)


def is_duplicate(crop: np.ndarray, kept: list) -> bool:
    """Whether a (s, s) uint8 grey ``crop`` is a near-copy of one in ``kept`` (see
    :data:`DUPLICATE_MAX`)."""
    c = _small(crop)
    return any(np.abs(c - _small(k)).mean() < DUPLICATE_MAX for k in kept)


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
    text = f"show: {expression}" + (f"  {int(np.ceil(countdown))}" if countdown
                                     else f"  {kept}/{per}")
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


def expression_order(labels: tuple[str, ...]) -> list[str]:
    """The expressions a session asks for, in order: :data:`ORDER`, then any other labels."""
    return [e for e in ORDER if e in labels] + [e for e in labels if e not in ORDER]


def schedule(labels: tuple[str, ...]) -> str:
    """The session's timing in words (for the log and for recording a video by hand)."""
    return ", ".join(f"{e} {k * SLOT_S:g}-{(k + 1) * SLOT_S:g} s"
                     for k, e in enumerate(expression_order(labels)))


def run_session(source, finder, labels: tuple[str, ...], per: int = PER_EXPRESSION,
                headless: bool = True) -> Session:
    """Ask for each expression in turn (:func:`expression_order`) and keep up to ``per`` good
    frames of each, on the schedule of the module docstring.

    Args:
        source: yields (frame (H, W, 3) uint8 BGR, timestamp s), as the demo's sources (a
            video's timestamps are its own clock).
        finder: a :class:`~fer_edge.detect.FaceFinder`.
        labels: the model's class names (class ids index into it).
        per: frames kept per expression at most (the j-th from ``j * HOLD_S / per``
            seconds into the hold).
        headless: no window (no overlay, no keys).

    Raises:
        SourceError: the source ended before every expression was asked (nothing kept).
        KeyboardInterrupt: cancelled with q/Esc.
    """
    order = expression_order(labels)
    frames = iter(source)
    session, start = Session(), None
    for n, expression in enumerate(order):
        kept, start = _one_expression(frames, finder, expression, per, headless, session,
                                      start, final=n == len(order) - 1)
        if kept is None:
            raise SourceError(f"{source.name} ended during '{expression}' ({n} of "
                              f"{len(order)} expressions done); nothing was written: "
                              "check the camera (cable, power, another program) or use a "
                              f"video that follows the schedule ({SLOT_S:g} s per "
                              "expression)")
        if not kept:
            session.skipped.append(expression)
        session.crops += kept
        session.y += [labels.index(expression)] * len(kept)
        log.info("%s: %d frame(s) kept (%d of %d expressions done)", expression, len(kept),
                 n + 1, len(order))
    return session


def _one_expression(frames, finder, expression: str, per: int, headless: bool,
                    session: Session, start: float | None, final: bool
                    ) -> tuple[list | None, float | None]:
    """One slot of the schedule, from ``start`` (None: the first frame's time).

    Returns:
        The kept crops and the next slot's start. The crops are [] when no frame was good or
        the expression was skipped (``s``: its frames are dropped and the next expression
        starts at once), None when the source ended in this slot (in the ``final`` slot a
        source ending during the hold keeps what it has, and ``per`` frames end the session
        at once).
    """
    kept, gap, holding = [], HOLD_S / per, False
    for frame, ts in frames:
        start = ts if start is None else start
        left, face = COUNTDOWN_S - (ts - start), None
        if ts - start >= SLOT_S:  # the next slot's first frame (its countdown: not judged)
            return kept, start + SLOT_S
        holding = left <= 0
        # frame j is taken at the first good frame from HOLD_S * j / per into the hold
        if holding and len(kept) < per and -left >= len(kept) * gap - 1e-9:
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
        if key == "skip":
            return [], ts
        if final and len(kept) >= per:
            return kept, ts
    return (kept if final and holding else None), start
