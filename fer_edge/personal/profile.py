"""Personal profiles: the file ``fer-edge enroll`` writes and ``--profile`` reads. Light tier.

A profile describes one person's face as far as the method needs (no image, no crop): the
:class:`~fer_edge.personal.method.Correction` (a (D, C) float16 weight, a (C,) bias, the
enrolled classes, the (D,) float16 standardisation and neutral anchor, and since version 3
each shot's features sketched to 128 numbers by a fixed random projection, int8, for the
local share) plus a JSON header binding it to one model file (its sha256) and recording the
labels, the shots per class and the format version.

File layout (little-endian)::

    b"FERPROF\\0"  u32 header length  header JSON (UTF-8)  arrays  sha256(everything before)

The trailing sha256 makes a truncated or edited file fail to load (an integrity check against
damage, not a signature: anyone can write a new valid profile). Files are written atomically
with mode 0600, never over an existing file unless asked.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fer_edge.errors import OutputError, ProfileError
from fer_edge.personal.method import LOCAL_DIMS, NORM_FLOOR, Correction

MAGIC = b"FERPROF\0"
VERSION = 3
#: array name -> stored dtype; shapes come from the header's "dim", "labels" and "centres".
#: Version 1 (before the neutral anchor) stores the first four and still loads (anchor = 0),
#: version 2 (before the local share) the first five (no centres: the fixed pool); both
#: predict as when they were made. Centres are stored as int8 times the header's
#: "centre_scale".
_ARRAYS = (("weight", "<f2"), ("bias", "<f4"), ("mean", "<f2"), ("std", "<f2"),
           ("anchor", "<f2"), ("centres", "i1"))
_STORED = {1: 4, 2: 5, 3: 6}
_READS = tuple(_STORED)


@dataclass(frozen=True)
class Profile:
    """One person's calibration for one model.

    Attributes:
        model_sha256: hex sha256 of the model file it was made with.
        labels: the model's class names, in output order.
        correction: the fitted :class:`~fer_edge.personal.method.Correction`.
        shots: {label: photos enrolled} for the enrolled classes.
        created: UNIX time of enrolment.
        source: where it was read from (its messages name it; "" for a new profile).
    """

    model_sha256: str
    labels: tuple[str, ...]
    correction: Correction
    shots: dict
    created: float = 0.0
    source: str = field(default="", compare=False)

    @property
    def enrolled(self) -> tuple[str, ...]:
        """The enrolled class names."""
        return tuple(lab for lab, e in zip(self.labels, self.correction.enrolled) if e)

    def check_model(self, predictor) -> None:
        """Raise :class:`ProfileError` unless ``predictor`` runs the model this profile was
        made for (same file sha256 and labels)."""
        have = getattr(predictor, "model_sha256", None)
        this = f"{self.source}: this profile" if self.source else "this profile"
        if have != self.model_sha256:
            raise ProfileError(
                f"{this} was made for model sha256 {self.model_sha256[:12]}.. but the "
                f"loaded model is {str(have)[:12]}..; enrol again with this model "
                "(fer-edge enroll --model ...) or load the model the profile was made with")
        if tuple(predictor.spec.labels) != self.labels:
            raise ProfileError(f"{this}'s labels differ from the model's; enrol again with "
                               "this model")

    def adjust(self, probs: np.ndarray, emb: np.ndarray) -> np.ndarray:
        """Personalise predictions.

        Args:
            probs: (N, C) float32 model probabilities.
            emb: (N, D) float32 embeddings of the same faces (same passes).

        Returns:
            (N, C) float32 probabilities, rows summing to 1.

        Raises:
            ProfileError: shapes that do not fit the profile, probabilities outside [0, 1],
                NaN or inf.
        """
        probs, emb = np.asarray(probs, np.float32), np.asarray(emb, np.float32)
        if probs.ndim != 2 or probs.shape[1] != len(self.labels) or emb.shape != (
                len(probs), self.correction.weight.shape[0]):
            raise ProfileError(f"profile expects probs (N, {len(self.labels)}) and embeddings "
                               f"(N, {self.correction.weight.shape[0]}); got {probs.shape} and "
                               f"{emb.shape}: use the model the profile was made with")
        if not len(probs):
            return probs
        if not (np.isfinite(emb).all() and np.isfinite(probs).all()
                and probs.min() >= 0 and probs.max() <= 1 + 1e-3):
            raise ProfileError("profile expects probabilities in [0, 1] and finite embeddings "
                               "(the model's own predict(..., embedding=True) output); got "
                               "values out of range or NaN/inf")
        return self.correction.adjust(probs, emb)

    # --- file format ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The profile file's bytes (see the module docstring)."""
        c = self.correction
        scale = float(np.abs(c.centres).max()) / 127.0 if c.centres.size else 0.0
        arrays = dict(weight=c.weight, bias=c.bias, mean=c.mean, std=c.std, anchor=c.anchor,
                      centres=np.round(c.centres / scale) if scale else c.centres)
        header = {"format": "fer-edge profile", "version": VERSION,
                  "model_sha256": self.model_sha256, "labels": list(self.labels),
                  "dim": int(c.weight.shape[0]), "enrolled": [bool(e) for e in c.enrolled],
                  "shots": {k: int(v) for k, v in self.shots.items()},
                  "norm_floor": float(c.norm_floor), "share": float(c.share),
                  "centres": int(len(c.centres)), "centre_dims": int(c.centres.shape[1]),
                  "centre_scale": scale, "width": float(c.width),
                  "created": round(float(self.created), 3)}
        head = json.dumps(header, sort_keys=True).encode("utf-8")
        body = MAGIC + struct.pack("<I", len(head)) + head + b"".join(
            np.ascontiguousarray(arrays[name], dtype).tobytes() for name, dtype in _ARRAYS)
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "profile") -> Profile:
        """Parse and integrity-check a profile file's bytes.

        Raises:
            ProfileError: not a profile, another version, truncated or edited.
        """
        fix = "enrol again with fer-edge enroll"
        if not data.startswith(MAGIC):
            raise ProfileError(f"{where}: not a fer-edge profile; {fix}")
        if len(data) < len(MAGIC) + 4 + 32 or hashlib.sha256(
                data[:-32]).digest() != data[-32:]:
            raise ProfileError(f"{where}: the profile is truncated or was edited (its "
                               f"checksum does not match); {fix}")
        n = struct.unpack_from("<I", data, len(MAGIC))[0]
        start = len(MAGIC) + 4
        try:
            header = json.loads(data[start:start + n].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ProfileError(f"{where}: unreadable profile header; {fix}") from None
        if not isinstance(header, dict):
            raise ProfileError(f"{where}: unreadable profile header; {fix}")
        if header.get("version") not in _READS:
            raise ProfileError(f"{where}: profile format version {header.get('version')!r}, "
                               f"this fer-edge reads versions {_READS}; {fix}")
        try:
            _check_header(header)
            return cls._from_parts(header, memoryview(data)[start + n:-32], where)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProfileError(f"{where}: the profile's header is incomplete or malformed; "
                               f"{fix}") from None

    @classmethod
    def _from_parts(cls, header: dict, raw: memoryview, where: str) -> Profile:
        labels, d = tuple(header["labels"]), int(header["dim"])
        n, k = int(header.get("centres", 0)), int(header.get("centre_dims", LOCAL_DIMS))
        shapes = {"weight": (d, len(labels)), "bias": (len(labels),), "mean": (d,),
                  "std": (d,), "anchor": (d,), "centres": (n, k)}
        arrays, pos = {"anchor": np.zeros(d, np.float32),
                       "centres": np.zeros((0, LOCAL_DIMS), np.float32)}, 0
        for name, dtype in _ARRAYS[:_STORED[header["version"]]]:
            count = int(np.prod(shapes[name]))
            size = count * np.dtype(dtype).itemsize
            if pos + size > len(raw):
                raise ProfileError(f"{where}: the profile is shorter than its header says; "
                                   "enrol again with fer-edge enroll")
            arrays[name] = np.frombuffer(raw[pos:pos + size], dtype).astype(
                np.float32).reshape(shapes[name])
            pos += size
        if pos != len(raw):
            raise ProfileError(f"{where}: the profile is longer than its header says; enrol "
                               "again with fer-edge enroll")
        if not (all(np.isfinite(a).all() for a in arrays.values())
                and (arrays["std"] > 0).all()):  # else every prediction would be NaN
            raise ProfileError(f"{where}: the profile holds values no enrolment writes (NaN, "
                               "infinite, or a zero spread); enrol again with fer-edge enroll")
        correction = Correction(arrays["weight"], arrays["bias"],
                                np.array(header["enrolled"], bool), arrays["mean"],
                                arrays["std"], arrays["anchor"],
                                float(header.get("norm_floor", NORM_FLOOR)),
                                float(header.get("share", 1.0)),
                                arrays["centres"] * np.float32(header.get("centre_scale", 0.0)),
                                float(header.get("width", 0.0)))
        return cls(header["model_sha256"], labels, correction, dict(header["shots"]),
                   float(header.get("created", 0.0)))

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write the profile to ``path`` exactly, atomically, mode 0600.

        Raises:
            OutputError: ``path`` exists and ``force`` is False, or it exists and is not a
                profile (``force`` replaces only profiles).
        """
        return write_private(Path(path), self.to_bytes(), force)


def _check_header(header: dict) -> None:
    """Raise ValueError/TypeError/KeyError unless the header's fields have the types and sizes
    a profile's do (the checksum catches damage; this catches a file written by hand)."""
    labels = header["labels"]
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise TypeError("labels")
    dim = header["dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise ValueError("dim")
    sha = header["model_sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise ValueError("model_sha256")
    enrolled = header["enrolled"]
    if not (isinstance(enrolled, list) and len(enrolled) == len(labels)
            and all(isinstance(e, bool) for e in enrolled)):
        raise ValueError("enrolled")
    shots = header["shots"]
    if not (isinstance(shots, dict) and set(shots) <= set(labels)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                    for v in shots.values())):
        raise ValueError("shots")
    share = header.get("share", 1.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ValueError("share")
    centres = header.get("centres", 0)
    if isinstance(centres, bool) or not isinstance(centres, int) or centres < 0:
        raise ValueError("centres")
    if type(header.get("centre_dims", LOCAL_DIMS)) is not int or header.get(
            "centre_dims", LOCAL_DIMS) != LOCAL_DIMS:
        raise ValueError("centre_dims")
    for key in ("centre_scale", "width", "norm_floor"):
        v = header.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e6:
            raise ValueError(key)


def load_profile(path: str | Path) -> Profile:
    """Read a profile file.

    Raises:
        ProfileError: missing, not a profile, truncated, edited or another format version.
    """
    if not str(path).strip():
        raise ProfileError("--profile: empty path; give the file fer-edge enroll wrote")
    p = Path(path)
    if p.is_dir():
        raise ProfileError(f"--profile {p}: is a folder; give the profile file fer-edge "
                           "enroll wrote (its --out)")
    if not p.is_file():
        raise ProfileError(f"--profile {p}: no such profile file; make one with fer-edge "
                           "enroll --images DIR --out PATH")
    return replace(Profile.from_bytes(p.read_bytes(), str(p)), source=str(p))


def write_private(path: Path, data: bytes, force: bool) -> Path:
    """Write ``data`` to ``path`` atomically with mode 0600 (temp file + fsync + rename, or a
    hard link when ``force`` is False so an existing file is never replaced)."""
    from fer_edge.io import atomic_write_bytes

    if path.is_dir():
        raise OutputError(f"--out {path}: is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise OutputError(f"--out {path}: is not a regular file (a device, pipe or socket); "
                          "choose a file name")
    if path.exists() and not force:
        raise OutputError(f"--out {path}: exists; pass --force to replace it, or choose "
                          "another name")
    check_replaceable(path)
    try:
        atomic_write_bytes(path, data, overwrite=force, mode=0o600)
    except FileExistsError:
        raise OutputError(f"--out {path}: exists; pass --force to replace it, or choose "
                          "another name") from None
    return path


def check_replaceable(path: Path) -> None:
    """Raise :class:`OutputError` when ``path`` is an existing non-empty file that is not a
    profile (damaged ones included: they start with :data:`MAGIC`): ``--force`` replaces a
    profile, never a user's photo, notes or model that ``--out`` was pointed at by mistake."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as exc:
        raise OutputError(f"--out {path}: cannot be read to check it is a profile "
                          f"({exc.strerror}); choose another name") from None
    if head != MAGIC:
        raise OutputError(f"--out {path}: exists and is not a fer-edge profile; --force "
                          "replaces only profiles: choose another name")


def make_profile(model_sha256: str, labels: tuple[str, ...], correction: Correction,
                 shots: dict) -> Profile:
    """A new :class:`Profile` stamped with the current time."""
    return Profile(model_sha256, tuple(labels), correction, dict(shots), time.time())
