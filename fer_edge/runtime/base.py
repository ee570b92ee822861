"""The predictor interface shared by every runtime. Light tier: never imports TensorFlow."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.errors import InputError, SpecError
from fer_edge.preprocess import to_model_input
from fer_edge.spec import ModelSpec

log = logging.getLogger(__name__)

#: keys of an ``analyze()`` face that were renamed -> the message a KeyError gives
RENAMED_KEYS = {"score": "'score' was renamed: use 'confidence' for "
                         "the top class's probability, or 'detector_score' for the face "
                         "detector's score"}


class FaceResult(dict):
    """One face of :meth:`Predictor.analyze`: a plain dict (JSON-serialisable) whose renamed
    keys (:data:`RENAMED_KEYS`) raise a KeyError naming the new key instead of a bare one."""

    def __missing__(self, key):
        if key in RENAMED_KEYS:
            raise KeyError(RENAMED_KEYS[key])
        raise KeyError(key)


class Predictor:
    """An exported model behind one interface (LiteRT or onnxruntime).

    Attributes:
        path: the model file.
        spec: its :class:`~fer_edge.spec.ModelSpec` (labels, input, normalisation, crop rule).
        backend: "litert" or "onnxruntime".
        input_dtype: numpy dtype of the model's real input tensor.
    """

    backend = "base"

    def __init__(self, path: Path, spec: ModelSpec, num_threads: int | None):
        self.path = Path(path)
        self.spec = spec
        self.num_threads = num_threads or os.cpu_count() or 1
        self.profile = None
        self._finders: dict = {}
        self._finders_lock = threading.Lock()
        self._sha256 = ""

    # --- to implement per runtime -------------------------------------------------------
    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, S, S, C) float32 normalised input -> ((N, classes) float32 probabilities,
        (N, D) float32 embeddings or None when the build has no embedding output)."""
        raise NotImplementedError

    def _check_io(self, in_shape: tuple, in_dtype: str, n_out: object,
                  n_emb: object = None) -> None:
        """Fail loudly when the model's real tensors disagree with its spec.

        Args:
            in_shape: the input tensor's shape (batch dimension may be symbolic).
            in_dtype: "float32", "int8", "uint8" or another dtype name.
            n_out: length of the probability output's last dimension (skipped if not an int).
            n_emb: length of the embedding output's last dimension (skipped if not an int).
        """
        s = self.spec
        want = (s.input_size, s.input_size, s.channels)
        if len(in_shape) != 4 or tuple(in_shape[1:]) != want:
            raise SpecError(f"{self.path}: model input {tuple(in_shape)} does not match the "
                            f"spec's (N, {want[0]}, {want[1]}, {want[2]})")
        if in_dtype != s.input_dtype:
            raise SpecError(f"{self.path}: model input is {in_dtype} but the spec says "
                            f"{s.input_dtype}")
        if isinstance(n_out, int) and n_out != s.num_classes:
            raise SpecError(f"{self.path}: model has {n_out} outputs but the spec lists "
                            f"{s.num_classes} labels")
        if s.embedding is not None and isinstance(n_emb, int) and n_emb != s.embedding.size:
            raise SpecError(f"{self.path}: embedding output {s.embedding.output!r} has {n_emb} "
                            f"features but the spec says {s.embedding.size}; re-export it")

    def _output_roles(self, names: list[str]) -> tuple[int, int | None]:
        """(index of the probability output, index of the embedding output or None) among the
        model's output names, as the spec names them."""
        emb = self.spec.embedding
        if emb is None:
            if len(names) != 1:
                raise SpecError(f"{self.path}: the model has {len(names)} outputs but its spec "
                                "names no embedding output; re-export it with `fer-edge convert`")
            return 0, None
        if emb.output not in names or len(names) != 2:
            raise SpecError(f"{self.path}: the spec's embedding output {emb.output!r} is not "
                            f"one of the model's two outputs {names}; re-export it with "
                            "`fer-edge convert`")
        e = names.index(emb.output)
        return 1 - e, e

    @property
    def model_sha256(self) -> str:
        """sha256 (hex) of the model file as loaded: what a personal profile is bound to."""
        if not self._sha256:
            self._sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return self._sha256

    # --- public API ---------------------------------------------------------------------
    def predict_inputs(self, x: np.ndarray, embedding: bool = False):
        """Run preprocessed input.

        Args:
            x: (N, S, S, C) float32 NHWC in the spec's normalised range ([-1, 1]).
            embedding: also return the embedding output.

        Returns:
            (N, num_classes) float32 probabilities (rows sum to ~1), no flip TTA, no profile;
            with ``embedding``, a tuple (probabilities, (N, D) float32 embeddings).
        """
        x = self._check_inputs(x)
        if embedding:
            self._need_embedding()
        if len(x) == 0:
            empty = np.zeros((0, self.spec.num_classes), np.float32)
            return (empty, np.zeros((0, self.spec.embedding.size), np.float32)) if embedding \
                else empty
        probs, emb = self._run(x)
        return (probs, emb) if embedding else probs

    def _check_inputs(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise InputError(f"{self.path.name}: input dtype {x.dtype} is not numeric; pass "
                             "float32 model input")
        x = x.astype(np.float32, copy=False)
        if x.ndim != 4 or x.shape[1:] != (self.spec.input_size, self.spec.input_size,
                                          self.spec.channels):
            raise InputError(f"{self.path.name}: input of shape {x.shape} does not match the "
                             f"model's (N, {self.spec.input_size}, {self.spec.input_size}, "
                             f"{self.spec.channels})")
        if not np.isfinite(x).all():
            raise InputError(f"{self.path.name}: input holds NaN or infinite values")
        return x

    def _need_embedding(self) -> None:
        if self.spec.embedding is None:
            raise SpecError(f"{self.path.name}: this build has no embedding output; re-export "
                            "it with this version's `fer-edge convert`")

    def predict(self, faces: np.ndarray, tta_flip: bool | None = None,
                embedding: bool = False):
        """Classify face crops with the shared preprocessing (and the profile, if one is in
        use: :meth:`use_profile`).

        Args:
            faces: (N, h, w) grey face crops (any size; 48x48 FER-2013 faces as they are):
                uint8, or any integer/float dtype with values in 0..255. One face (h, w) is
                refused (pass ``face[None]``), and so are floats in 0..1, NaN and values
                outside 0..255.
            tta_flip: average with the mirror image; default from the spec.
            embedding: also return the embeddings of the same passes.

        Returns:
            (N, num_classes) float32 probabilities in the spec's label order; with
            ``embedding``, a tuple (probabilities, (N, D) float32 embeddings), D =
            ``spec.embedding.size``, flip-averaged like the probabilities.

        Raises:
            InputError: wrong shape, dtype or value range (a ValueError too).
            SpecError: ``embedding`` (or a profile) on a build without an embedding output.
        """
        profile = self.profile
        want_emb = embedding or profile is not None
        probs, emb = self._passes(faces, tta_flip, want_emb)
        if profile is not None and len(probs):
            probs = np.asarray(profile.adjust(probs, emb), np.float32)
        return (probs, emb) if embedding else probs

    def embed(self, faces: np.ndarray, tta_flip: bool | None = None) -> np.ndarray:
        """The pooled face features of the model (what a personal profile is made of).

        Args:
            faces: as :meth:`predict`: (N, h, w) grey face crops, uint8 (0..255).
            tta_flip: average with the mirror image's features; default from the spec.

        Returns:
            (N, D) float32, D = ``spec.embedding.size`` (2048 for InceptionV3).
        """
        return self._passes(faces, tta_flip, True)[1]

    def _passes(self, faces, tta_flip: bool | None, want_emb: bool):
        """Probabilities (and embeddings) of the faces, flip-averaged when asked."""
        x = to_model_input(check_faces(faces), self.spec)
        flip = self.spec.tta_flip if tta_flip is None else tta_flip
        if not want_emb:
            probs = self.predict_inputs(x)
            if flip:
                probs = (probs + self.predict_inputs(x[:, :, ::-1, :].copy())) / 2.0
            return probs, None
        probs, emb = self.predict_inputs(x, embedding=True)
        if flip:
            p2, e2 = self.predict_inputs(x[:, :, ::-1, :].copy(), embedding=True)
            probs, emb = (probs + p2) / 2.0, (emb + e2) / 2.0
        return probs, emb

    def use_profile(self, profile) -> None:
        """Personalise every later :meth:`predict` / :meth:`analyze` with a profile (a loaded
        :class:`~fer_edge.personal.Profile`; None stops it). A profile file is loaded by
        ``fer_edge.load(profile=PATH)`` or ``fer_edge.personal.load_profile(PATH)`` (the
        runtime layer does not read profile files). The profile checks that it was made for
        this model (``profile.check_model(self)``); afterwards ``profile.adjust(probs (N, C)
        float32, emb (N, D) float32) -> (N, C) float32`` maps each pass's output."""
        if isinstance(profile, (str, os.PathLike)):
            raise TypeError("use_profile takes a loaded profile: "
                            f"use_profile(fer_edge.personal.load_profile({str(profile)!r}))")
        if profile is not None and not hasattr(profile, "check_model"):
            raise TypeError(f"use_profile: give a Profile (fer_edge.personal.load_profile(path)) "
                            f"or None, not {type(profile).__name__}")
        if profile is not None:
            self._need_embedding()
            profile.check_model(self)
        self.profile = profile

    def finder(self, detector: Any = "auto"):
        """The :class:`~fer_edge.detect.FaceFinder` (detect -> align -> crop) for a detector
        name ("auto", "blazeface-full", "blazeface-short", "haar", a YuNet .onnx path) or
        object, with this model's crop rule for it; cached per name."""
        from fer_edge.detect import FaceFinder

        if not isinstance(detector, str):
            return FaceFinder(self.spec, detector)
        with self._finders_lock:
            if detector not in self._finders:
                self._finders[detector] = FaceFinder(self.spec, detector)
            return self._finders[detector]

    def analyze(self, frame: np.ndarray, detector: Any = "auto") -> list[dict[str, Any]]:
        """Detect, align and classify every face of a frame.

        Args:
            frame: (H, W, 3) uint8 **BGR** frame (OpenCV order) or (H, W) uint8 grey.
            detector: a detector name ("auto" = BlazeFace full range, "blazeface-short",
                "haar", a YuNet .onnx path) or an object with ``detect_faces(frame)`` or
                ``detect(frame) -> [(x, y, w, h), ...]``.

        Returns:
            One :class:`FaceResult` (a dict) per face, largest first: ``box`` (x, y, w, h)
            ints, ``keypoints`` (K, 2) float list or None, ``probs`` {label: float},
            ``label`` (top class), ``confidence`` (its probability, 0..1) and
            ``detector_score`` (the face detector's score that this is a face, 0..1; 1.0 for
            Haar, which has none). ``"score"`` was renamed: asking for it raises a KeyError
            that says so.
        """
        frame = check_frame(frame)
        faces = self.finder(detector if detector is not None else "auto")(frame)
        if not faces:
            return []
        probs = self.predict(np.stack([f.crop for f in faces]))
        out = []
        for f, p in zip(faces, probs):
            k = int(p.argmax())
            out.append(FaceResult(
                box=f.box, keypoints=None if f.keypoints is None else f.keypoints.tolist(),
                probs=dict(zip(self.spec.labels, map(float, p))), label=self.spec.labels[k],
                confidence=float(p[k]), detector_score=float(f.score)))
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path.name}, {self.backend}, input "
                f"{self.input_dtype} {self.spec.input_size}x{self.spec.input_size}, "
                f"{self.num_threads} threads)")


def check_faces(faces: Any) -> np.ndarray:
    """Validate a batch of grey faces for :meth:`Predictor.predict`.

    Args:
        faces: (N, h, w) array-like, uint8 or integer/float values in 0..255.

    Returns:
        (N, h, w) uint8 grey faces.

    Raises:
        InputError: one line saying what is wrong and what to pass instead.
    """
    x = _faces_array(faces)
    x = _faces_shape(x)
    if x.dtype == np.uint8 or not x.size:
        return x.astype(np.uint8, copy=False)
    _faces_range(x)
    return np.rint(x).astype(np.uint8)


def _faces_array(faces: Any) -> np.ndarray:
    """``faces`` as a numeric numpy array (not a path, None, a ragged list or booleans)."""
    if isinstance(faces, (str, bytes, Path)) or faces is None:
        raise InputError(f"predict takes an array of grey faces (N, h, w), got {faces!r}; "
                         "read images with cv2.imread(path, cv2.IMREAD_GRAYSCALE)")
    try:
        x = np.asarray(faces)
    except ValueError:
        raise InputError("faces have different sizes; predict takes one (N, h, w) array: "
                         "resize every face to one size first (e.g. cv2.resize(f, (48, 48)))"
                         ) from None
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise InputError(f"faces have dtype {x.dtype}; pass uint8 grey faces (N, h, w)")
    return x


def _faces_shape(x: np.ndarray) -> np.ndarray:
    """(N, h, w) or (N, h, w, 1) -> (N, h, w); anything else refused with the fix."""
    if x.ndim == 2:
        raise InputError(f"faces have shape {x.shape}: predict takes a batch (N, h, w); for "
                         "one face pass face[None] (shape (1, h, w))")
    if x.ndim == 4 and x.shape[-1] in (3, 4):
        raise InputError(f"faces have shape {x.shape}: colour crops; convert each to grey "
                         "first (cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)) or use analyze(frame)")
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise InputError(f"faces have shape {x.shape}; pass grey faces as (N, h, w)")
    if len(x) and (x.shape[1] < 2 or x.shape[2] < 2):
        raise InputError(f"faces have shape {x.shape}: each face must be at least 2x2 pixels")
    return x


def _faces_range(x: np.ndarray) -> None:
    """Non-uint8 faces must hold finite grey pixels in 0..255 (not 0..1)."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise InputError("faces hold NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise InputError(f"face values span {lo:g}..{hi:g}; pass grey pixels in 0..255 "
                         "(uint8)")
    if x.dtype.kind == "f" and 0 < hi <= 1.0:
        raise InputError(f"faces are floats in 0..{hi:g}: they look scaled to 0..1; pass "
                         "pixels in 0..255 (e.g. (faces * 255).astype(np.uint8))")


def check_frame(frame: Any) -> np.ndarray:
    """Validate a camera frame for :meth:`Predictor.analyze`.

    Args:
        frame: (H, W, 3) uint8 BGR, (H, W, 4) BGRA or (H, W) uint8 grey.

    Returns:
        The frame as a numpy array; (H, W, 1) grey becomes (H, W).

    Raises:
        InputError: None (a failed ``cv2.imread``), a path, a non-uint8 or empty frame.
    """
    if frame is None:
        raise InputError("frame is None: cv2.imread returns None when it cannot read a file; "
                         "check the path")
    if isinstance(frame, (str, bytes, Path)):
        raise InputError(f"analyze takes an image array, got the path {str(frame)!r}; read it "
                         "first: analyze(cv2.imread(path))")
    f = np.asarray(frame)
    if f.dtype != np.uint8:
        raise InputError(f"frame has dtype {f.dtype}; pass a uint8 BGR image as OpenCV reads "
                         "it (floats in 0..1: (frame * 255).astype(np.uint8))")
    if not (f.ndim == 2 or (f.ndim == 3 and f.shape[2] in (1, 3, 4))):
        raise InputError(f"frame has shape {f.shape}; pass (H, W, 3) BGR or (H, W) grey")
    if f.size == 0:
        raise InputError(f"frame of shape {f.shape} is empty")
    if min(f.shape[:2]) < 2:
        raise InputError(f"frame of shape {f.shape} is too small to hold a face; pass a "
                         "camera frame or photo (at least 2x2 pixels)")
    return f[:, :, 0] if f.ndim == 3 and f.shape[2] == 1 else f


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Float -> integer tensor with the model's own quantisation parameters."""
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * np.float32(scale)
