"""Record the detector crop rules in an existing build's model spec (embedded and sidecar).

Builds made before fer-edge calibrated a crop rule per detector carry ``face_crops = {}``; the
runtime then falls back to ``fer_edge/assets/face_crops.json`` (and says so in
``spec.extra["face_crops_from"]``). This script writes the calibrated rules into the build
itself, sets ``detector`` to the default (``auto``'s detector) and ``crop`` to its rule, and
leaves the model bytes untouched (only the appended spec archive of a ``.tflite`` is
replaced; ``.onnx`` builds get a sidecar ``.spec.json``). The lead runs it once on the packaged
default model:

    python convert/respec.py fer_edge/assets/fer_default_int8.tflite
    python convert/respec.py BUILD --out NEW.tflite         # write a copy instead
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

from fer_edge.faces import AUTO, calibrated_crops, record_crops
from fer_edge.io import atomic_write_bytes
from fer_edge.runtime.spec_io import (
    embed_in_tflite,
    read_tflite_spec,
    sidecar_path,
    update_card,
)
from fer_edge.spec import ModelSpec


def strip_spec(data: bytes) -> bytes:
    """The flatbuffer without the appended spec archive (unchanged if it has none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            start = min(i.header_offset for i in z.infolist())
    except (zipfile.BadZipFile, ValueError):
        return data
    return data[:start]


def respec(spec: ModelSpec) -> ModelSpec:
    """``spec`` with every calibrated crop rule recorded and the default detector's as
    ``crop`` (replacing any rules it recorded before)."""
    if AUTO not in calibrated_crops():
        raise SystemExit("respec: no calibration for the default detector; run "
                         "benchmarks/calibrate_crops.py first")
    return record_crops(spec.replace(face_crops={}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", help="a .tflite or .onnx build from `fer-edge convert`")
    ap.add_argument("--out", default="", help="write here instead of in place")
    args = ap.parse_args()
    src = Path(args.build)
    out = Path(args.out) if args.out else src
    side = sidecar_path(src)
    if src.suffix == ".tflite":
        data = src.read_bytes()
        spec = read_tflite_spec(data, str(src)) or ModelSpec.read(side)
        new = respec(spec)
        new_bytes = embed_in_tflite(strip_spec(data), new)
        atomic_write_bytes(out, new_bytes)
        update_card(out, new_bytes)  # a packaged model's card holds the file's sha256
    else:
        new = respec(ModelSpec.read(side))
        if out != src:
            atomic_write_bytes(out, src.read_bytes())
    if side.is_file() or src.suffix != ".tflite":
        new.write(sidecar_path(out))
    print(f"{out}: spec now records detector {new.detector} and crop rules for "
          f"{', '.join(sorted(new.face_crops))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
