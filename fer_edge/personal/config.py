"""``EnrollConfig``: one config object for ``fer-edge enroll``. Light tier.

Flags and the ``[enroll]`` table of a ``--config`` recipe come from this dataclass (the
machinery of :mod:`fer_edge.config`); the model, detector, frame size and thread defaults are
the demo's (:mod:`fer_edge.options`, :mod:`fer_edge.detect.defaults`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fer_edge.config import check_config, opt
from fer_edge.detect.defaults import DETECTOR
from fer_edge.errors import ConfigError
from fer_edge.options import frame_size_opt, model_opt, threads_opt
from fer_edge.personal.guided import PER_EXPRESSION
from fer_edge.personal.method import SHARE

#: the ``one_of`` set of the three sources: one flag of them, or one key of the recipe
SOURCE = "source"


@dataclass(frozen=True)
class EnrollConfig:
    """``fer-edge enroll``: where the person's faces come from (photo folders, or a guided
    session on a camera or a video), the profile file to write, and how faces are found."""

    SECTION = "enroll"
    #: number flags are checked by argparse as they are parsed (see add_config_args)
    CHECK_AT_PARSE = True

    images: str = opt("", "DIR/<expression>/ photos (happy/, sad/, ... or synonyms such as "
                      "anger/, sadness/); an expression with no folder is not enrolled",
                      one_of=SOURCE, metavar="DIR")
    camera: int | None = opt(None, "guided session on camera N", ge=0, one_of=SOURCE)
    picamera: bool = opt(False, "guided session on the Raspberry Pi camera module (picamera2)",
                         one_of=SOURCE)
    video: str = opt("", "guided session recorded in a video file (the live schedule, on the "
                     "video's clock)", one_of=SOURCE, metavar="F")
    out: str = opt("", "the profile file to write (exactly this path; required)",
                   metavar="FILE")
    force: bool = opt(False, "replace an existing --out file")
    model: str = model_opt()
    detector: str = opt(DETECTOR, "face detector, as in fer-edge demo")
    headless: bool = opt(False, "no window (a --video session never opens one: it runs the "
                         "schedule on the video's clock; a camera session needs one)")
    per_expression: int = opt(PER_EXPRESSION, "guided session: frames kept per expression",
                              ge=1, le=50)
    share: float = opt(SHARE, "the profile's share of the vote against the model's own "
                       "probabilities on faces unlike the enrolment shots (it rises to 1 on "
                       "faces like them; 1 = the correction alone everywhere: larger gains, "
                       "and on some models some people made worse)", gt=0, le=1)
    frame_size: str = frame_size_opt()
    threads: int = threads_opt("classifier threads (0 = all cores)")

    @property
    def sources(self) -> list[str]:
        """The flags of the sources given (one, once validated)."""
        given = {"images": bool(self.images), "camera": self.camera is not None,
                 "picamera": self.picamera, "video": bool(self.video)}
        return [f"--{name}" for name, yes in given.items() if yes]

    def validate(self) -> None:
        """Check every field, then that one source and ``--out`` are given.

        Raises:
            ConfigError: one line naming the problem and what to pass.
        """
        check_config(self)
        if len(self.sources) != 1:
            got = f" (given: {' and '.join(self.sources)})" if self.sources else ""
            raise ConfigError("choose one source: --images DIR, --camera N, --picamera or "
                              f"--video F{got}")
        if not self.out:
            raise ConfigError("pass --out FILE: the profile file to write")
