"""Enrolment: face crops of one person -> a :class:`~fer_edge.personal.profile.Profile`.
Light tier.

``enrol_crops`` is the one fitting path (used by ``fer-edge enroll``, ``benchmarks/personal.py``
and the tests); ``crops_from_folders`` reads ``DIR/<expression>/`` photos, largest face each.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from fer_edge.data.readers import CLASS_SYNONYMS, class_id
from fer_edge.errors import DataError, InputError, SpecError
from fer_edge.personal.method import Recipe, fit_correction, shot_variants
from fer_edge.personal.profile import Profile, make_profile

log = logging.getLogger(__name__)

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def embedding_stats(predictor) -> tuple[np.ndarray, np.ndarray]:
    """(D,) float32 mean and std of the model's embedding over FER-2013 Training faces
    (``spec.embedding``).

    Raises:
        SpecError: the model's spec records no embedding (a build from before embeddings).
    """
    emb = getattr(predictor.spec, "embedding", None)
    mean, std = (getattr(emb, "mean", None), getattr(emb, "std", None))
    if not mean or not std:
        raise SpecError(f"{predictor.path.name}: this build has no embedding output (or no "
                        "statistics for it) in its spec; re-export it with `fer-edge convert` "
                        "or use the packaged default model")
    return np.asarray(mean, np.float32), np.maximum(np.asarray(std, np.float32), 1e-6)


def enrol_crops(predictor, crops: np.ndarray, y: np.ndarray,
                recipe: Recipe = Recipe()) -> Profile:
    """Fit a profile from one person's face crops.

    Args:
        predictor: a loaded model with an embedding output and **no profile in use** (its
            ``predict(faces, tta_flip=, embedding=True)`` gives the plain model's output).
        crops: (N, h, w) uint8 grey face crops (as ``FaceFinder`` makes them).
        y: (N,) int class ids in the model's label order.
        recipe: the method's switches (default: the shipped method).

    Returns:
        A :class:`Profile` bound to the predictor's model file.
    """
    probs, emb, src = shot_outputs(predictor, crops, recipe.variants)
    return profile_from_outputs(predictor, probs, emb, np.asarray(y, np.int64), src, recipe)


def shot_outputs(predictor, crops: np.ndarray, variants: str = Recipe.variants
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's output on every variant of every shot (no flip TTA: the mirror image is a
    variant of its own).

    Returns:
        (M, C) float32 probabilities, (M, D) float32 embeddings, (M,) int64 source shot index.
    """
    if getattr(predictor, "profile", None) is not None:
        raise InputError("enrol with the plain model: call predictor.use_profile(None) first")
    faces, src = shot_variants(np.asarray(crops, np.uint8), variants)
    probs, emb = predictor.predict(faces, tta_flip=False, embedding=True)
    return probs, emb, src


def profile_from_outputs(predictor, probs: np.ndarray, emb: np.ndarray, y: np.ndarray,
                         src: np.ndarray, recipe: Recipe = Recipe()) -> Profile:
    """Fit the profile from :func:`shot_outputs` (y: (N,) class ids of the shots)."""
    mean, std = embedding_stats(predictor)
    labels = tuple(predictor.spec.labels)
    counts = np.bincount(y, minlength=len(labels))
    shots = float(counts[counts > 0].mean())
    neutral = labels.index("neutral") if "neutral" in labels else None
    correction = fit_correction(probs, emb, y[src], shots, mean, std, recipe, neutral, src)
    return make_profile(predictor.model_sha256, labels, correction,
                        {labels[c]: int(n) for c, n in enumerate(counts) if n})


def expression_folders(root: Path, labels: tuple[str, ...]) -> list[tuple[Path, int]]:
    """The ``root/<expression>/`` folders and their class ids in ``labels``.

    Raises:
        DataError: ``root`` is not a folder, a folder name maps to no class, two folders
            name one class, or there is no expression folder.
    """
    if not root.is_dir():
        raise DataError(f"--images {root}: not a folder; give a folder of <expression>/ "
                        "folders (e.g. happy/, sad/)")
    out, seen = [], {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cid = class_id(sub.name)
        name = None if cid is None else _label(cid, labels)
        if name is None:
            raise DataError(f"{sub}: folder name {sub.name!r} names no expression; rename it "
                            f"to one of {', '.join(labels)} (or a synonym such as "
                            f"{', '.join(sorted(k for k in CLASS_SYNONYMS if k not in labels)[:4])}"
                            ") or move it out")
        if name in seen:
            raise DataError(f"{sub}: {seen[name].name!r} and {sub.name!r} both mean {name}; "
                            "merge them into one folder")
        seen[name] = sub
        out.append((sub, labels.index(name)))
    if not out:
        raise DataError(f"--images {root}: no <expression>/ folders in it (e.g. happy/, "
                        "sad/, neutral/)")
    return out


def _label(fer_id: int, labels: tuple[str, ...]) -> str | None:
    from fer_edge.spec import FER2013_LABELS

    name = FER2013_LABELS[fer_id]
    return name if name in labels else None


def crops_from_folders(finder, root: str | Path, labels: tuple[str, ...]
                       ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The largest face of every photo of ``root/<expression>/``.

    Args:
        finder: a :class:`~fer_edge.detect.FaceFinder` (detect -> align -> crop).
        root: the folder of expression folders.
        labels: the model's class names.

    Returns:
        (N, s, s) uint8 grey crops, (N,) int64 class ids, and {"photos": n, "no_face": [paths]}.

    Raises:
        DataError: bad folder names, an unreadable image, no photo, or no face in any photo.
    """
    root = Path(root)
    crops, ys, missed, photos = [], [], [], 0
    for folder, cid in expression_folders(root, labels):
        for f in sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_EXT):
            photos += 1
            frame = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if frame is None:
                raise DataError(f"{f}: cannot be read as an image; remove or replace it")
            faces = finder(frame)
            if not faces:
                missed.append(str(f))
                log.debug("%s: no face found; skipped", f)
                continue
            crops.append(faces[0].crop)
            ys.append(cid)
    if not photos:
        raise DataError(f"--images {root}: no photo in its <expression>/ folders (read: "
                        f"{', '.join(sorted(_IMAGE_EXT))}); put photos there, or convert "
                        "others (e.g. .heic) to .jpg")
    if not crops:
        raise DataError(f"--images {root}: no face found in any of its {photos} photos; use "
                        "photos where the face is visible and at least ~60 px wide")
    return np.stack(crops), np.array(ys, np.int64), {"photos": photos, "no_face": missed}
