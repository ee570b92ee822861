"""Crop rules and box spread per detector, calibrated on FER-2013: read from
``fer_edge/assets/face_crops.json`` (written by :mod:`fer_edge.detect.calibrate`). Light tier.

A crop rule (:class:`~fer_edge.spec.CropRule`) turns a detector's box into a FER-2013-framed
face; ``fer-edge train`` records every calibrated rule in a new model's spec
(:func:`crop_fields`), and the runtime reads them from the model's spec alone. The box spread
(:class:`BoxSpread`) is the data for crop-jitter augmentation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from fer_edge.detect.defaults import ASSETS, AUTO
from fer_edge.detect.finder import detector_name
from fer_edge.errors import ConfigError
from fer_edge.spec import CropRule

#: crop rules and box spread calibrated on FER-2013 (``python -m fer_edge.detect.calibrate``)
CALIBRATION_FILE = ASSETS / "face_crops.json"



@dataclass(frozen=True)
class BoxSpread:
    """How a detector's box sits on a FER-2013-framed face, measured on pasted training faces
    (``python -m fer_edge.detect.calibrate``), in units of the true face side.

    Use it to jitter training crops the way a detector will (crop-jitter augmentation).

    Attributes:
        detector: detector name.
        n: faces measured.
        dx, dy: (median, std) of (box centre - face centre) / face side, x right, y down.
        size: (median, std) of box side (max(w, h)) / face side.
        angle_deg: (median, std) of the eye-line angle error in degrees (0, 0 without eyes).
    """

    detector: str
    n: int
    dx: tuple[float, float]
    dy: tuple[float, float]
    size: tuple[float, float]
    angle_deg: tuple[float, float] = (0.0, 0.0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` jitters (dx, dy, size, angle_deg) as an (n, 4) float32 array, Gaussian
        around the medians with the measured std (what a detector box does to a face)."""
        mu = np.array([self.dx[0], self.dy[0], self.size[0], self.angle_deg[0]])
        sd = np.array([self.dx[1], self.dy[1], self.size[1], self.angle_deg[1]])
        return (mu + sd * rng.standard_normal((n, 4))).astype(np.float32)


def _calibration() -> dict:
    if not CALIBRATION_FILE.is_file():
        return {}
    return json.loads(CALIBRATION_FILE.read_text())


def calibrated_crops() -> dict[str, CropRule]:
    """Crop rule per detector name, calibrated on FER-2013 (empty if never calibrated)."""
    return {k: CropRule(**v["crop"]) for k, v in _calibration().get("detectors", {}).items()}


def box_spread(detector: str = "auto") -> BoxSpread:
    """The measured box spread of a detector ("auto", "blazeface-full", ...; see
    :class:`BoxSpread`).

    Raises:
        ConfigError: no calibration for that detector.
    """
    name = detector_name(detector)
    d = _calibration().get("detectors", {}).get(name)
    if d is None:
        raise ConfigError(f"no box spread measured for detector {name!r}; run "
                          "python -m fer_edge.detect.calibrate")
    s = d["spread"]
    return BoxSpread(name, int(s["n"]), tuple(s["dx"]), tuple(s["dy"]), tuple(s["size"]),
                     tuple(s.get("angle_deg", (0.0, 0.0))))


def crop_fields() -> dict:
    """The crop fields of a new model spec: every calibrated crop rule in ``face_crops``, the
    default detector (:data:`AUTO`) as ``detector`` and its rule as ``crop``. ``fer-edge
    train`` records them in the run's spec; every build copies them, and the runtime reads
    them from the build alone.

    Raises:
        ConfigError: this install has no calibration for the default detector.
    """
    crops = calibrated_crops()
    if AUTO not in crops:
        raise ConfigError(f"no crop calibration for {AUTO} in {CALIBRATION_FILE}; reinstall "
                          "fer-edge")
    return {"detector": AUTO, "crop": crops[AUTO], "face_crops": crops}
