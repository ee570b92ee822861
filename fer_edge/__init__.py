"""fer-edge: facial-emotion recognition from training to the edge.

Light tier: importing this package never imports TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(path=None, **kwargs):
    """Load an exported model (``.tflite`` or ``.onnx``) as a :class:`fer_edge.runtime.Predictor`.

    Args:
        path: model file; ``None`` uses the packaged default build.
        **kwargs: passed to the predictor (e.g. ``num_threads``).
    """
    from fer_edge.runtime import load_predictor

    return load_predictor(path, **kwargs)
