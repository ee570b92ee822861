"""Read and write the model spec carried inside exported builds. Light tier.

- ``.tflite``: a zip archive appended to the flatbuffer holding ``fer_edge_spec.json``
  (LiteRT ignores trailing bytes; Python's ``zipfile`` finds the archive from the end).
- ``.onnx``: the ``metadata_props`` entry ``fer_edge_spec`` (read through onnxruntime's
  ``custom_metadata_map`` on the device; no ``onnx`` package needed).
- Every build also has a sidecar ``<build file>.spec.json``; when both exist they must agree.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from fer_edge.errors import SpecError
from fer_edge.spec import ModelSpec

SPEC_ENTRY = "fer_edge_spec.json"
ONNX_KEY = "fer_edge_spec"


def sidecar_path(model_path: str | Path) -> Path:
    """``model.tflite`` -> ``model.tflite.spec.json`` (one per build, whatever its format)."""
    p = Path(model_path)
    return p.with_name(p.name + ".spec.json")


def embed_in_tflite(tflite: bytes, spec: ModelSpec) -> bytes:
    """Return the flatbuffer with the spec appended as a one-entry zip archive."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(SPEC_ENTRY, spec.to_json())
    return tflite + buf.getvalue()


def read_tflite_spec(data: bytes, where: str) -> ModelSpec | None:
    """The spec appended to a ``.tflite`` file, or None when there is none."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if SPEC_ENTRY not in z.namelist():
                return None
            text = z.read(SPEC_ENTRY)
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    return ModelSpec.from_json(text, f"{where} (embedded spec)")


def resolve_spec(model_path: Path, embedded: ModelSpec | None) -> ModelSpec:
    """Combine the embedded and sidecar specs; fail loudly when missing or different."""
    side = sidecar_path(model_path)
    sidecar = ModelSpec.read(side) if side.is_file() else None
    if embedded is None and sidecar is None:
        raise SpecError(f"{model_path}: no fer-edge model spec inside the file and no "
                        f"{side.name} beside it; export the model with `fer-edge convert`")
    if embedded is not None and sidecar is not None and embedded.to_dict() != sidecar.to_dict():
        raise SpecError(f"{model_path}: the embedded spec and {side.name} differ; delete the "
                        "stale sidecar or re-export the model")
    return embedded if embedded is not None else sidecar
