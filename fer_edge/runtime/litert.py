"""LiteRT (``ai-edge-litert``) backend for ``.tflite`` builds. Light tier."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from fer_edge.errors import BackendUnavailableError, ModelFileError, SpecError
from fer_edge.quiet import native_stderr_quiet
from fer_edge.runtime.base import Predictor, dequantize, quantize
from fer_edge.runtime.spec_io import read_tflite_spec, resolve_spec, tflite_model_bytes

_DTYPES = {np.float32: "float32", np.int8: "int8", np.uint8: "uint8"}


class LiteRTPredictor(Predictor):
    """A ``.tflite`` build run by the LiteRT interpreter (XNNPACK on CPU).

    Integer I/O is handled with the scale and zero point read from the model's own tensors.
    The interpreter runs one face per invoke when the model has a fixed batch of 1. One
    interpreter serves every thread: calls are serialised by a lock (a LiteRT interpreter
    is not safe to invoke from two threads at once); load one model per thread to run them
    in parallel.
    """

    backend = "litert"

    def __init__(self, path: Path, num_threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise BackendUnavailableError(
                "running .tflite needs LiteRT: pip install ai-edge-litert") from None
        data = path.read_bytes()
        spec = resolve_spec(path, read_tflite_spec(data, str(path)), tflite_model_bytes(data))
        super().__init__(path, spec, num_threads)
        self._lock = threading.Lock()
        self._interp = _interpreter(Interpreter, path, data, self.num_threads)
        self._in = self._interp.get_input_details()[0]
        outs = self._interp.get_output_details()
        p, e = self._output_roles([o["name"] for o in outs])
        self._out, self._emb = outs[p], (outs[e] if e is not None else None)
        self.input_dtype = np.dtype(self._in["dtype"])
        self._check()

    def _check(self) -> None:
        real = _DTYPES.get(self.input_dtype.type, str(self.input_dtype))
        self._check_io(tuple(int(v) for v in self._in["shape"]), real,
                       int(self._out["shape"][-1]),
                       None if self._emb is None else int(self._emb["shape"][-1]))
        if real != "float32" and self._in["quantization"][0] == 0:
            raise SpecError(f"{self.path}: integer input without quantisation parameters")
        self._batch1 = int(self._in["shape"][0]) == 1

    def _invoke(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.input_dtype != np.float32:
            scale, zp = self._in["quantization"]
            x = quantize(x, scale, zp, self.input_dtype)
        self._interp.set_tensor(self._in["index"], x)
        self._interp.invoke()
        probs = _read(self._interp, self._out)
        emb = None if self._emb is None else _read(self._interp, self._emb)
        return probs, emb

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with self._lock:
            if self._batch1:
                parts = [self._invoke(x[i:i + 1]) for i in range(len(x))]
                probs = np.concatenate([p for p, _ in parts])
                emb = None if self._emb is None else np.concatenate([e for _, e in parts])
                return probs, emb
            if self._interp.get_input_details()[0]["shape"][0] != len(x):
                self._interp.resize_tensor_input(self._in["index"], list(x.shape))
                self._interp.allocate_tensors()
            return self._invoke(x)


def _interpreter(interpreter_cls, path: Path, data: bytes, num_threads: int):
    """A LiteRT interpreter with tensors allocated; ModelFileError for an unloadable file."""
    try:
        with native_stderr_quiet():
            interp = interpreter_cls(model_content=data, num_threads=num_threads)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: not a loadable TFLite model "
                             f"({str(exc).splitlines()[0][:120]}); re-export it") from None
    return interp


def _read(interp, detail: dict) -> np.ndarray:
    """An output tensor as float32 (dequantised with its own scale and zero point); a copy."""
    y = interp.get_tensor(detail["index"])
    if y.dtype != np.float32:
        scale, zp = detail["quantization"]
        return dequantize(y, scale, zp)
    return y.copy()
