"""Keep what native libraries print off a user's terminal. Light tier (standard library).

Two tools, both off with ``-v`` (debug logging):

- :func:`native_stderr_quiet` (LiteRT): LiteRT prints ``INFO: Created TensorFlow Lite XNNPACK
  delegate for CPU.`` from C++ for every interpreter, whatever the Python log level; a user
  would see it on every demo start. Descriptor 2 points at /dev/null while a model loads.
- :func:`native_noise_filtered` (TensorFlow): TensorFlow prints, straight to descriptor 2 and
  before its logging is set up (so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them), lines such
  as ``failed call to cuInit``, ``oneDNN custom operations are on`` and ``All log messages
  before absl::InitializeLog()``, twice on a CPU machine. Descriptor 2 is caught while
  TensorFlow is imported, and every other line is passed on.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from contextlib import contextmanager

#: substrings of the start-up lines that say nothing a user can act on
NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
         "Could not find cuda drivers", "failed call to cuInit", "Unable to register cuDNN",
         "Unable to register cuFFT", "Unable to register cuBLAS",
         "computation placer already registered", "TF-TRT Warning",
         "This TensorFlow binary is optimized to use available CPU instructions",
         "rebuild TensorFlow with the appropriate compiler flags",
         "Created TensorFlow Lite XNNPACK delegate")


def verbose() -> bool:
    """Whether debug logging is on (``fer-edge -v``)."""
    return logging.getLogger().isEnabledFor(logging.DEBUG)


def is_noise(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's start-up lines (:data:`NOISE`)."""
    return any(n in line for n in NOISE)


@contextmanager
def native_noise_filtered():
    """Within the block, whatever native code writes to descriptor 2 is held back; on exit
    descriptor 2 is restored and the held lines are written to ``sys.stderr``, except
    :data:`NOISE`. Does nothing with ``-v`` or when descriptor 2 is not open."""
    if verbose():
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    _flush()
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            _flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", "replace")
            kept = [ln for ln in text.splitlines(keepends=True) if not is_noise(ln)]
            if kept:
                sys.stderr.write("".join(kept))
                _flush()


def _flush() -> None:
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


_quiet_lock = threading.Lock()


@contextmanager
def native_stderr_quiet():
    """Point file descriptor 2 at /dev/null for the ``with`` block (unless fer-edge logs at
    DEBUG); Python's own ``sys.stderr`` is flushed first and restored after."""
    if logging.getLogger("fer_edge").isEnabledFor(logging.DEBUG):
        yield
        return
    with _quiet_lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
