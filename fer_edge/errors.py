"""Exceptions. Light tier.

Every error a user can cause is a :class:`FerEdgeError`: the CLI prints its message on one
line and exits with :attr:`FerEdgeError.exit_code`, never with a traceback.
"""

from __future__ import annotations


class FerEdgeError(Exception):
    """Base class: a problem the user can fix. The message says what to do."""

    exit_code = 2


class DataError(FerEdgeError):
    """A dataset file, row, image or folder is missing or malformed."""


class SpecError(FerEdgeError):
    """A model spec is missing, unknown or does not match the model's tensors."""


class ModelFileError(FerEdgeError):
    """A model file is missing, truncated or not a model this tool can read."""


class BackendUnavailableError(FerEdgeError):
    """The runtime for a model format, or the training stack, is not installed."""


#: heavy-tier packages -> what to install when one is missing
HEAVY_PACKAGES = {"tensorflow": ".[train]", "tf_keras": ".[train]",
                  "tensorflow_model_optimization": ".[train]", "tf2onnx": ".[train]",
                  "onnx": ".[train]", "matplotlib": "matplotlib"}


def require_training_stack(command: str) -> None:
    """Raise :class:`BackendUnavailableError` unless TensorFlow and tf_keras can be imported
    (``fer-edge train``/``convert`` on a light install)."""
    import importlib.util

    missing = [m for m in ("tensorflow", "tf_keras")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailableError(
            f"`fer-edge {command}` needs the training stack ({', '.join(missing)} not "
            "installed; this is the light install): pip install -e '.[train]' (or "
            "pip install 'fer-edge[train]')")


class ConfigError(FerEdgeError):
    """A configuration value is invalid."""


class InputError(FerEdgeError, ValueError):
    """An array passed to the Python API has the wrong shape, dtype or value range."""


class OutputError(FerEdgeError):
    """An output file or folder exists (and ``--force`` was not given) or cannot be written."""


class SourceError(FerEdgeError):
    """A camera, video or image source cannot be opened or read."""


class AccuracyGateError(FerEdgeError):
    """An exported build fell short of the float model (convert's parity gate)."""

    exit_code = 3


class ClusterError(FerEdgeError):
    """Distributed training cannot start or lost a peer (TF_CONFIG, unreachable worker), or
    the device cannot run the requested precision."""


class ProfileError(FerEdgeError):
    """A personal profile is missing, damaged, edited, or made for another model."""
