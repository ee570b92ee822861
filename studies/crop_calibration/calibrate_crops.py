"""The crop-calibration study's command: the product command
(``python -m fer_edge.detect.calibrate``, :mod:`fer_edge.detect.calibrate`) with this study's
CSV of results.

Measures each detector's crop rule and box spread on FER-2013 Training faces pasted into
frames, writes ``fer_edge/assets/face_crops.json`` and
``studies/crop_calibration/results/crop_calibration.csv``:

    python studies/crop_calibration/calibrate_crops.py --data ../shared/data/fer2013.npz --n 2000

(the same as ``python -m fer_edge.detect.calibrate --data ... --n 2000
--csv studies/crop_calibration/results/crop_calibration.csv``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer_edge.detect.calibrate import main

RESULTS = Path(__file__).resolve().parent / "results" / "crop_calibration.csv"

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--csv" or a.startswith("--csv=") for a in argv):
        argv += ["--csv", str(RESULTS)]
    sys.exit(main(argv, script="studies/crop_calibration/calibrate_crops.py"))
