"""Bind a build's spec to its weights: re-embed the spec with its ``sha256``.

    python convert/bind_spec.py fer_edge/assets/fer_default_int8.tflite
    python convert/bind_spec.py runs/train/old/export/*.tflite runs/train/old/export/*.onnx

For builds made before fer-edge bound specs (they load with a warning). The spec already in
the build (embedded, or the ``<build>.spec.json`` sidecar) is kept field for field; only
``sha256`` is added (:func:`fer_edge.runtime.spec_io.bind`), the file is rewritten atomically,
a sidecar is rewritten to match, and a model card beside it (``<stem>.card.json``, as
``convert/package_default.py`` writes) gets the new file's sha256 and size. The weights are
not touched. ``.onnx`` builds need the ``onnx`` package (the train extra); ``.tflite`` does not.
A build whose spec is already bound to it is left alone; one bound to other weights is refused
(that spec belongs elsewhere: re-export the build).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_edge.errors import FerEdgeError, SpecError  # noqa: E402
from fer_edge.io import atomic_write_bytes  # noqa: E402
from fer_edge.runtime.spec_io import (  # noqa: E402
    ONNX_KEY,
    binding,
    embed_bound_tflite,
    embed_in_onnx,
    onnx_model_bytes,
    read_tflite_spec,
    sidecar_path,
    tflite_model_bytes,
    update_card,
)
from fer_edge.spec import ModelSpec  # noqa: E402


def _current_spec(path: Path, embedded: ModelSpec | None) -> ModelSpec:
    side = sidecar_path(path)
    sidecar = ModelSpec.read(side) if side.is_file() else None
    if embedded is not None and sidecar is not None and embedded.to_dict() != sidecar.to_dict():
        raise SpecError(f"{path}: the embedded spec and {side.name} differ; decide which is "
                        "right and delete the other first")
    spec = embedded or sidecar
    if spec is None:
        raise SpecError(f"{path}: no spec inside and no {side.name}; nothing to bind")
    return spec


def bind_build(path: Path) -> str:
    """Re-embed the build's spec with its binding; returns what was done."""
    data = path.read_bytes()
    if path.suffix == ".tflite":
        weights = tflite_model_bytes(data)
        spec = _current_spec(path, read_tflite_spec(data, str(path)))
    elif path.suffix == ".onnx":
        import onnx

        proto = onnx.load_from_string(data)
        meta = {p.key: p.value for p in proto.metadata_props}
        weights = onnx_model_bytes(data)
        spec = _current_spec(path, ModelSpec.from_json(meta[ONNX_KEY], str(path))
                             if ONNX_KEY in meta else None)
    else:
        raise FerEdgeError(f"{path}: not a .tflite or .onnx build")
    if spec.sha256:
        if binding(weights, spec) == spec.sha256:
            return f"{path}: already bound"
        raise SpecError(f"{path}: its spec is bound to other weights; re-export the build")
    if path.suffix == ".tflite":
        new, bound = embed_bound_tflite(data, spec)
    else:
        bound = embed_in_onnx(proto, spec)
        new = proto.SerializeToString()
    atomic_write_bytes(path, new)
    if sidecar_path(path).is_file():
        bound.write(sidecar_path(path))
    carded = update_card(path, new)
    return f"{path}: spec bound (sha256 {bound.sha256[:12]}...)" + (
        ", its model card updated" if carded else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", help=".tflite / .onnx builds")
    args = ap.parse_args(argv)
    for b in args.builds:
        try:
            print(bind_build(Path(b)))
        except (FerEdgeError, OSError) as exc:
            print(f"bind_spec: error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
