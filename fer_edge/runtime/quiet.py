"""Silence what native libraries print on the process's stderr while a model loads. Light tier.

LiteRT prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` from C++ for every
interpreter, whatever the Python log level; a user sees it on every demo start. It is hidden
unless fer-edge logs at DEBUG (``-v``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

_lock = threading.Lock()


@contextlib.contextmanager
def native_stderr_quiet():
    """Point file descriptor 2 at /dev/null for the ``with`` block (unless fer-edge logs at
    DEBUG); Python's own ``sys.stderr`` is flushed first and restored after."""
    if logging.getLogger("fer_edge").isEnabledFor(logging.DEBUG):
        yield
        return
    with _lock:
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
