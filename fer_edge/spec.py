"""The model spec: what every exported model carries so labels and preprocessing can't drift.

Light tier. The spec is created once by ``fer-edge train`` (``spec.json`` in the run folder),
completed by ``fer-edge convert`` (the embedding output, bound to the weights) and copied into
every build (TFLite: an appended zip entry; ONNX: ``metadata_props``; plus a sidecar
``<build>.spec.json``), then read back by the runtime, which checks it against the model's
real tensors.

The schema is strict: every field must be present, unknown fields are refused, and reading
fills in no defaults. A spec of another schema version is refused with the fix (re-export).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_edge.errors import SpecError

SCHEMA = "fer-edge/spec/2"

#: FER-2013 class names in label-id order. Defined here and nowhere else.
FER2013_LABELS: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Native resolution of FER-2013 faces (pixels). Every face is first brought to this size so
#: that a webcam crop looks like a training face before it is resized to the model input.
SOURCE_SIZE = 48


@dataclass(frozen=True)
class CropRule:
    """How a detector box becomes the face crop the model sees.

    FER-2013 faces are tight, roughly square crops from the eyebrows-forehead to the chin.

    Attributes:
        square: make the box square around its centre (side = max(w, h)) before the margin.
        scale: multiply the (square) side by this factor; 1.0 keeps the detector's box.
        shift_y: move the centre down by this fraction of the side (Haar boxes sit high).
        source_size: the crop is resized to ``source_size`` x ``source_size`` grey (INTER_AREA)
            first, the resolution of the training faces, then to the model input.
        align: when the detector gives eye keypoints, rotate the crop about its centre so the
            eyes are level (FER-2013 faces are upright); the shift then follows the face's
            own "down". Detectors without keypoints (Haar) crop axis-aligned.
    """

    square: bool
    scale: float
    shift_y: float
    source_size: int
    align: bool


@dataclass(frozen=True)
class Embedding:
    """The build's second output: the pooled face features (what ``fer-edge enroll`` uses).

    Attributes:
        output: the output tensor's name in the build.
        size: D, the feature length (2048 for InceptionV3).
        mean, std: D floats each: per-feature mean and standard deviation of this build's
            flip-averaged embeddings of the FER-2013 Training faces (for standardising);
            empty when not measured.
    """

    output: str
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to feed a model and read its outputs.

    Attributes:
        labels: class names in output-index order.
        input_size: model input height = width (pixels).
        channels: model input channels (3: the grey face repeated, as InceptionV3 expects).
        input_dtype: dtype of the model's input tensor ("float32", "int8" or "uint8"). For int8
            builds the quantisation scale and zero point are read from the model itself.
        norm_scale, norm_offset: ``x = pixel * norm_scale + norm_offset`` maps grey pixels in
            [0, 255] (float32, after resizing) to the model's float input range ([-1, 1] for
            InceptionV3). Each is one float, or one float per input channel (the grey face is
            repeated to every channel first; e.g. VGG/ResNet subtract the ImageNet BGR means).
        crop: the face-crop rule for ``detector``.
        detector: the default face detector of this model (``crop`` is its rule).
        face_crops: crop rules per detector name ("haar", "blazeface-full", ...), each
            calibrated on FER-2013 so a detector's box becomes a FER-2013-framed face. The
            runtime uses these and nothing else; see :meth:`crop_for`.
        tta_flip: average the probabilities of the face and its mirror image.
        arch: architecture name.
        embedding: the embedding output (:class:`Embedding`), or None for a training run's
            own spec (``fer-edge convert`` adds it to every build).
        extra: free-form provenance (version, run name, float accuracy, ...).
        schema: :data:`SCHEMA`.
        sha256: binds the spec to its weights: sha256 of the model file without its spec
            entry, then of this spec's canonical JSON without this field
            (:func:`fer_edge.runtime.spec_io.binding`); set by ``fer-edge convert``, checked on
            load, so a spec moved to other weights or edited (e.g. labels swapped) is refused.
            Empty only in a training run's own ``spec.json``.
    """

    labels: tuple[str, ...]
    input_size: int
    channels: int
    input_dtype: str
    norm_scale: float | tuple[float, ...]
    norm_offset: float | tuple[float, ...]
    crop: CropRule
    detector: str
    face_crops: dict[str, CropRule]
    tta_flip: bool
    arch: str
    embedding: Embedding | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA
    sha256: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def crop_for(self, detector: str) -> CropRule | None:
        """The crop rule recorded for ``detector`` (a name such as "blazeface-full"), or None.

        ``face_crops`` first, then ``crop`` when ``detector`` is the spec's ``detector``.
        """
        if detector in self.face_crops:
            return self.face_crops[detector]
        return self.crop if detector == self.detector else None

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        for k in ("norm_scale", "norm_offset"):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        if d["embedding"] is not None:
            d["embedding"]["mean"] = list(d["embedding"]["mean"])
            d["embedding"]["std"] = list(d["embedding"]["std"])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "spec") -> ModelSpec:
        """Read a spec: every field required, none unknown, no defaults filled in.

        Raises:
            SpecError: another schema version, a missing or unknown field, a wrong type.
        """
        if not isinstance(d, dict):
            raise SpecError(f"{where}: the model spec is not a JSON object")
        if d.get("schema") != SCHEMA:
            raise SpecError(f"{where}: spec schema {d.get('schema')!r} is not this fer-edge's "
                            f"{SCHEMA!r}; re-export the model with `fer-edge convert` (a "
                            "training run: retrain, or resume it with this version)")
        try:
            fields = _exact_fields(cls, d, "spec")
            fields["labels"] = _labels(fields["labels"])
            fields["crop"] = _crop_rule(fields["crop"], "crop")
            if not isinstance(fields["face_crops"], dict):
                raise ValueError("face_crops must be an object")
            fields["face_crops"] = {str(k): _crop_rule(v, f"face_crops.{k}")
                                    for k, v in fields["face_crops"].items()}
            fields["embedding"] = _embedding(fields["embedding"])
            for k in ("norm_scale", "norm_offset"):
                if isinstance(fields[k], list):
                    fields[k] = tuple(float(v) for v in fields[k])
            spec = cls(**fields)
        except (TypeError, ValueError, AttributeError) as exc:
            raise SpecError(f"{where}: malformed model spec ({exc}); re-export the model "
                            "with `fer-edge convert`") from None
        spec.validate(where)
        return spec

    def stored_dict(self) -> dict[str, Any]:
        """The spec as written, without ``sha256`` (what the weights binding covers)."""
        return {k: v for k, v in self.to_dict().items() if k != "sha256"}

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "spec") -> ModelSpec:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"{where}: the model spec is not valid JSON ({exc}); re-export "
                            "the model with `fer-edge convert`") from None
        return cls.from_dict(d, where)

    @classmethod
    def read(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"{path}: spec file not found")
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise SpecError(f"{path}: cannot read the spec ({exc.strerror})") from None
        return cls.from_json(text, str(path))

    def write(self, path: str | Path) -> None:
        from fer_edge.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    def validate(self, where: str = "spec") -> None:
        """Types and ranges of every field. Raises SpecError naming the field."""
        for name, ok in _field_checks(self):
            if not ok:
                raise SpecError(f"{where}: spec field {name} = {_field_value(self, name)!r} is "
                                "not a valid value; re-export the model with `fer-edge "
                                "convert` (or fix the field)")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise SpecError(f"{where}: labels must be >= 2 distinct names, got {list(self.labels)}")
        if self.input_size < 8 or self.channels not in (1, 3):
            raise SpecError(f"{where}: bad input geometry {self.input_size}x{self.channels}")
        if self.input_dtype not in ("float32", "int8", "uint8"):
            raise SpecError(f"{where}: bad input_dtype {self.input_dtype!r}")
        for k in ("norm_scale", "norm_offset"):
            v = getattr(self, k)
            if isinstance(v, tuple) and len(v) != self.channels:
                raise SpecError(f"{where}: {k} must be a number or one number per channel "
                                f"({self.channels}), got {v!r}")
        for name, rule in {self.detector: self.crop, **self.face_crops}.items():
            if rule.source_size < 8 or rule.scale <= 0:
                raise SpecError(f"{where}: bad crop rule for {name}: {rule}")
        _validate_embedding(self.embedding, where)


# --- reading helpers --------------------------------------------------------------------------

def _exact_fields(cls: type, d: dict, what: str) -> dict[str, Any]:
    """``d`` as constructor arguments of the dataclass ``cls``: every field present, no other."""
    names = {f.name for f in dataclasses.fields(cls)}
    missing, unknown = sorted(names - set(d)), sorted(set(d) - names)
    if missing:
        raise ValueError(f"{what} lacks field(s) {', '.join(missing)}")
    if unknown:
        raise ValueError(f"{what} has unknown field(s) {', '.join(unknown)}")
    return dict(d)


def _labels(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("labels must be a list of names")
    return tuple(v)


def _crop_rule(v: Any, what: str) -> CropRule:
    if not isinstance(v, dict):
        raise ValueError(f"{what} must be an object")
    return CropRule(**_exact_fields(CropRule, v, what))


def _embedding(v: Any) -> Embedding | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError("embedding must be an object or null")
    e = _exact_fields(Embedding, v, "embedding")
    for k in ("mean", "std"):
        if not isinstance(e[k], list):
            raise ValueError(f"embedding.{k} must be a list of numbers")
        e[k] = tuple(float(x) for x in e[k])
    return Embedding(**e)


# --- validation helpers -----------------------------------------------------------------------

def _num(v: Any, kind: type | tuple = (int, float)) -> bool:
    return isinstance(v, kind) and not isinstance(v, bool) and math.isfinite(v)


def _per_channel(v: Any) -> tuple:
    """A normalisation field as a tuple (one value, or one per channel)."""
    return v if isinstance(v, tuple) and v else (v,)


def _field_checks(s: ModelSpec) -> list[tuple[str, bool]]:
    checks = [("input_size", _num(s.input_size, int)), ("channels", _num(s.channels, int)),
              ("norm_scale", all(_num(v) and v != 0 for v in _per_channel(s.norm_scale))),
              ("norm_offset", all(_num(v) for v in _per_channel(s.norm_offset))),
              ("tta_flip", isinstance(s.tta_flip, bool)),
              ("input_dtype", isinstance(s.input_dtype, str)),
              ("detector", isinstance(s.detector, str) and bool(s.detector)),
              ("arch", isinstance(s.arch, str)), ("extra", isinstance(s.extra, dict)),
              ("sha256", isinstance(s.sha256, str))]
    for name, rule in {"crop": s.crop, **{f"face_crops.{k}": r
                                          for k, r in s.face_crops.items()}}.items():
        checks += [(f"{name}.square", isinstance(rule.square, bool)),
                   (f"{name}.align", isinstance(rule.align, bool)),
                   (f"{name}.scale", _num(rule.scale)), (f"{name}.shift_y", _num(rule.shift_y)),
                   (f"{name}.source_size", _num(rule.source_size, int))]
    return checks


def _field_value(s: ModelSpec, dotted: str) -> Any:
    obj: Any = s
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part)
    return obj


def _validate_embedding(e: Embedding | None, where: str) -> None:
    if e is None:
        return
    if not (isinstance(e.output, str) and e.output and _num(e.size, int) and e.size > 0):
        raise SpecError(f"{where}: bad embedding output {e.output!r} of size {e.size!r}; "
                        "re-export the model with `fer-edge convert`")
    for k in ("mean", "std"):
        v = getattr(e, k)
        if v and (len(v) != e.size or not all(math.isfinite(x) for x in v)):
            raise SpecError(f"{where}: embedding.{k} must hold {e.size} finite numbers; "
                            "re-export the model with `fer-edge convert`")
    if e.std and min(e.std) <= 0:
        raise SpecError(f"{where}: embedding.std must be positive; re-export the model")
