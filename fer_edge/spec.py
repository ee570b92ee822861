"""The model spec: what every exported model carries so labels and preprocessing can't drift.

Light tier. The spec is created once by ``fer-edge train`` (``spec.json`` in the run folder),
copied into every build by ``fer-edge convert`` (TFLite: an appended zip entry; ONNX:
``metadata_props``; plus a sidecar ``<build>.spec.json``) and read back by the runtime, which
checks it against the model's real tensors.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_edge.errors import SpecError

SCHEMA = "fer-edge/spec/1"

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

    square: bool = True
    scale: float = 1.0
    shift_y: float = 0.0
    source_size: int = SOURCE_SIZE
    align: bool = False


def _per_channel(v: Any) -> tuple:
    """A normalisation field as a tuple (one value, or one per channel)."""
    return v if isinstance(v, tuple) and v else (v,)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to feed a model and read its output.

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
        detector: the face detector ``crop`` was made for ("haar" for builds made before
            fer-edge recorded it).
        face_crops: crop rules per detector name ("haar", "blazeface-full", ...), each
            calibrated on FER-2013 so a detector's box becomes a FER-2013-framed face.
            Empty in builds made before that calibration existed; see :meth:`crop_for`.
        tta_flip: average the probabilities of the face and its mirror image.
        arch: architecture name.
        extra: free-form provenance (version, run name, float accuracy, ...).
        sha256: binds the spec to its weights: sha256 of the model file without its spec
            entry, then of this spec's canonical JSON without this field
            (:func:`fer_edge.runtime.spec_io.binding`); set by ``fer-edge convert``, checked on
            load, so a spec moved to other weights or edited (e.g. labels swapped) is refused.
            Empty in specs made before it existed (and in a run's own ``spec.json``).
    """

    labels: tuple[str, ...] = FER2013_LABELS
    input_size: int = 75
    channels: int = 3
    input_dtype: str = "float32"
    norm_scale: float | tuple[float, ...] = 1.0 / 127.5
    norm_offset: float | tuple[float, ...] = -1.0
    crop: CropRule = field(default_factory=CropRule)
    detector: str = "haar"
    face_crops: dict[str, CropRule] = field(default_factory=dict)
    tta_flip: bool = False
    arch: str = "inception_v3"
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
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "spec") -> ModelSpec:
        if not isinstance(d, dict):
            raise SpecError(f"{where}: the model spec is not a JSON object")
        if d.get("schema") != SCHEMA:
            raise SpecError(
                f"{where}: unknown spec schema {d.get('schema')!r} (this fer-edge reads "
                f"{SCHEMA!r}); "
                "re-export the model with this version of fer-edge"
            )
        try:
            raw = json.loads(json.dumps(d))  # a deep copy, JSON types only
            d = dict(d)
            if not isinstance(d["labels"], list) or not all(isinstance(x, str)
                                                            for x in d["labels"]):
                raise ValueError("labels must be a list of names")
            if not isinstance(d.get("crop", {}), dict):
                raise ValueError("crop must be an object")
            d["labels"] = tuple(d["labels"])
            d["crop"] = CropRule(**d.get("crop", {}))
            d["face_crops"] = {str(k): CropRule(**v)
                               for k, v in (d.get("face_crops") or {}).items()}
            for k in ("norm_scale", "norm_offset"):
                if isinstance(d.get(k), list):
                    d[k] = tuple(float(v) for v in d[k])
            known = {f.name for f in dataclasses.fields(cls)}
            spec = cls(**{k: v for k, v in d.items() if k in known})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SpecError(f"{where}: malformed model spec ({exc}); re-export the model "
                            "with `fer-edge convert`") from None
        spec.validate(where)
        # the spec exactly as stored (fields a newer fer-edge added included): what the
        # weights binding covers
        object.__setattr__(spec, "_stored", {k: v for k, v in raw.items() if k != "sha256"})
        return spec

    def stored_dict(self) -> dict[str, Any]:
        """The spec as it was read (every stored field, this version's or not), or as it
        would be written; without ``sha256``."""
        stored = getattr(self, "_stored", None)
        if stored is None:
            stored = {k: v for k, v in self.to_dict().items() if k != "sha256"}
        return stored

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "spec") -> ModelSpec:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"{where}: the model spec is not valid JSON ({exc})") from None
        return cls.from_dict(d, where)

    @classmethod
    def read(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"{path}: spec file not found")
        return cls.from_json(path.read_text(), str(path))

    def write(self, path: str | Path) -> None:
        from fer_edge.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    def validate(self, where: str = "spec") -> None:
        """Types and ranges of every field. Raises SpecError naming the field."""
        def num(v, kind=(int, float)):
            return isinstance(v, kind) and not isinstance(v, bool) and math.isfinite(v)

        checks = [("input_size", num(self.input_size, int)), ("channels", num(self.channels, int)),
                  ("norm_scale", all(num(v) and v != 0 for v in _per_channel(self.norm_scale))),
                  ("norm_offset", all(num(v) for v in _per_channel(self.norm_offset))),
                  ("tta_flip", isinstance(self.tta_flip, bool)),
                  ("input_dtype", isinstance(self.input_dtype, str)),
                  ("arch", isinstance(self.arch, str)), ("extra", isinstance(self.extra, dict)),
                  ("sha256", isinstance(self.sha256, str)),
                  ("crop.square", isinstance(self.crop.square, bool)),
                  ("crop.scale", num(self.crop.scale)), ("crop.shift_y", num(self.crop.shift_y)),
                  ("crop.source_size", num(self.crop.source_size, int))]
        for name, ok in checks:
            if not ok:
                value = getattr(self.crop, name[5:]) if name.startswith("crop.") else getattr(
                    self, name)
                raise SpecError(f"{where}: spec field {name} = {value!r} is not a valid "
                                "value; re-export the model with `fer-edge convert` (or fix "
                                "the field)")
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
