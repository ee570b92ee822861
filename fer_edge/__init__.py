"""fer-edge: facial-emotion recognition from training to the edge.

Light tier: importing this package never imports TensorFlow.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(path=None, *, model=None, profile=None, **kwargs):
    """Load an exported model (``.tflite`` or ``.onnx``) as a :class:`fer_edge.runtime.Predictor`.

    Args:
        path: model file; ``None`` uses the packaged default build (also accepted as
            ``model=``; give one of the two).
        profile: a personal profile (a path from ``fer-edge enroll``, or a loaded
            :class:`fer_edge.personal.Profile`): every ``predict``/``analyze`` is then
            personalised. It must have been made with this model file.
        **kwargs: passed to the predictor (e.g. ``num_threads``).

    Raises:
        InputError: both ``path`` and ``model`` given.
        ProfileError: the profile is missing, damaged or was made for another model.
    """
    from fer_edge.runtime import load_predictor

    if path is not None and model is not None:
        from fer_edge.errors import InputError

        raise InputError("load() got a model twice (path and model=); pass one")
    predictor = load_predictor(model if path is None else path, **kwargs)
    if isinstance(profile, (str, os.PathLike)):
        from fer_edge.personal.profile import load_profile

        profile = load_profile(profile)
    if profile is not None:
        predictor.use_profile(profile)
    return predictor
