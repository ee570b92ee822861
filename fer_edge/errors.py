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
    """The runtime for a model format is not installed."""


class ConfigError(FerEdgeError):
    """A configuration value is invalid."""


class SourceError(FerEdgeError):
    """A camera, video or image source cannot be opened or read."""


class AccuracyGateError(FerEdgeError):
    """An exported build fell short of the float model (convert's parity gate)."""

    exit_code = 3
