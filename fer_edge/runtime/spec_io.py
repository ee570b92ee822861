"""Read and write the model spec carried inside exported builds. Light tier.

- ``.tflite``: a zip archive appended to the flatbuffer holding ``fer_edge_spec.json``
  (LiteRT ignores trailing bytes; Python's ``zipfile`` finds the archive from the end).
- ``.onnx``: the ``metadata_props`` entry ``fer_edge_spec`` (read through onnxruntime's
  ``custom_metadata_map`` on the device; no ``onnx`` package needed).
- Every build also has a sidecar ``<build file>.spec.json``; when both exist they must agree.
- The spec's ``sha256`` binds it to the weights (:func:`binding`): the sha256 of the model
  bytes without the spec entry, then of the spec's canonical JSON. A spec moved onto other
  weights, or edited after ``fer-edge convert`` (labels swapped, a size changed), no longer
  matches and the build is refused; so is a build whose spec carries no binding.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

from fer_edge.errors import SpecError
from fer_edge.spec import ModelSpec

SPEC_ENTRY = "fer_edge_spec.json"
ONNX_KEY = "fer_edge_spec"


def binding(model_bytes: bytes, spec: ModelSpec) -> str:
    """The hash that binds ``spec`` to a model.

    Args:
        model_bytes: the model file without its spec (:func:`tflite_model_bytes`,
            :func:`onnx_model_bytes`).
        spec: the spec; every stored field but ``sha256`` counts.

    Returns:
        64 hex digits.
    """
    h = hashlib.sha256(model_bytes)
    h.update(b"\0fer-edge-spec\0")
    h.update(json.dumps(spec.stored_dict(), sort_keys=True, separators=(",", ":"),
                        ensure_ascii=True).encode())
    return h.hexdigest()


def bind(model_bytes: bytes, spec: ModelSpec) -> ModelSpec:
    """``spec`` with its ``sha256`` set for ``model_bytes`` (the model without its spec)."""
    spec = spec.replace(sha256="")
    return spec.replace(sha256=binding(model_bytes, spec))


def tflite_model_bytes(data: bytes) -> bytes:
    """A ``.tflite`` file's flatbuffer: the bytes before the appended spec archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if SPEC_ENTRY in z.namelist():
                return data[:min(i.header_offset for i in z.infolist())]
    except (zipfile.BadZipFile, OSError, EOFError):
        pass
    return data


def onnx_model_bytes(data: bytes) -> bytes:
    """An ``.onnx`` file without its ``fer_edge_spec`` metadata entry.

    Walks the top level of the ModelProto wire format (no ``onnx`` package needed on the
    device) and drops the ``metadata_props`` (field 14) entry whose key is ``fer_edge_spec``.
    """
    out, i, n = [], 0, len(data)
    try:
        while i < n:
            start = i
            key, i = _varint(data, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _varint(data, i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                size, i = _varint(data, i)
                body, i = data[i:i + size], i + size
                if field == 14 and _entry_key(body) == ONNX_KEY:
                    continue
            else:
                raise ValueError(f"wire type {wire}")
            if i > n:
                raise ValueError("truncated")
            out.append(data[start:i])
    except (ValueError, IndexError):
        return data  # not a protobuf we can walk: onnxruntime will say what is wrong
    return b"".join(out)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    v, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise ValueError("bad varint")


def _entry_key(body: bytes) -> str | None:
    """The ``key`` (field 1) of a serialised StringStringEntryProto."""
    i = 0
    while i < len(body):
        key, i = _varint(body, i)
        if key & 7 != 2:
            return None
        size, i = _varint(body, i)
        if key >> 3 == 1:
            return body[i:i + size].decode("utf-8", "replace")
        i += size
    return None


def check_binding(model_path: Path, model_bytes: bytes, spec: ModelSpec) -> None:
    """Refuse a spec that is not bound to these weights (no ``sha256``, or another one)."""
    if not spec.sha256:
        raise SpecError(f"{model_path}: the spec is not bound to the weights (no sha256: a "
                        "training run's spec.json, or an edited one); re-export the model "
                        "with `fer-edge convert`")
    if binding(model_bytes, spec) != spec.sha256:
        raise SpecError(f"{model_path}: the spec does not belong to these weights (sha256 "
                        "binding mismatch: the model or its spec was edited, or a spec from "
                        "another build is used); re-export with `fer-edge convert`")


def sidecar_path(model_path: str | Path) -> Path:
    """``model.tflite`` -> ``model.tflite.spec.json`` (one per build, whatever its format)."""
    p = Path(model_path)
    return p.with_name(p.name + ".spec.json")


def embed_in_tflite(tflite: bytes, spec: ModelSpec) -> bytes:
    """Return the flatbuffer with the spec, bound to it (:func:`bind`), appended as a
    one-entry zip archive. ``tflite`` may already carry a spec; it is replaced."""
    return embed_bound_tflite(tflite, spec)[0]


def embed_bound_tflite(tflite: bytes, spec: ModelSpec) -> tuple[bytes, ModelSpec]:
    """(flatbuffer + bound spec archive, the bound spec) for a (float or int8) TFLite."""
    flat = tflite_model_bytes(tflite)
    spec = bind(flat, spec)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(SPEC_ENTRY, spec.to_json())
    return flat + buf.getvalue(), spec


def embed_in_onnx(proto, spec: ModelSpec) -> ModelSpec:
    """Set the ``fer_edge_spec`` metadata entry of an ONNX ``ModelProto`` (in place) to
    ``spec`` bound to the model's bytes (:func:`bind`); returns the bound spec."""
    def put(s: ModelSpec) -> None:
        for p in list(proto.metadata_props):
            if p.key == ONNX_KEY:
                proto.metadata_props.remove(p)
        entry = proto.metadata_props.add()
        entry.key, entry.value = ONNX_KEY, s.to_json()

    put(spec)
    bound = bind(onnx_model_bytes(proto.SerializeToString()), spec)
    put(bound)
    return bound


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


def resolve_spec(model_path: Path, embedded: ModelSpec | None,
                 model_bytes: bytes | None = None) -> ModelSpec:
    """Combine the embedded and sidecar specs; fail loudly when missing or different, or
    (given ``model_bytes``, the model without its spec) when not bound to these weights."""
    side = sidecar_path(model_path)
    sidecar = ModelSpec.read(side) if side.is_file() else None
    if embedded is None and sidecar is None:
        raise SpecError(f"{model_path}: no fer-edge model spec inside the file and no "
                        f"{side.name} beside it; export the model with `fer-edge convert`")
    if embedded is not None and sidecar is not None and embedded.to_dict() != sidecar.to_dict():
        raise SpecError(f"{model_path}: the embedded spec and {side.name} differ; delete the "
                        "stale sidecar or re-export the model")
    spec = embedded if embedded is not None else sidecar
    if model_bytes is not None:
        check_binding(model_path, model_bytes, spec)
    return spec
