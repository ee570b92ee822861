"""onnxruntime backend for ``.onnx`` builds. Light tier."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fer_edge.errors import BackendUnavailableError, ModelFileError
from fer_edge.runtime.base import Predictor
from fer_edge.runtime.spec_io import ONNX_KEY, onnx_model_bytes, resolve_spec
from fer_edge.spec import ModelSpec

_DTYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


class OnnxPredictor(Predictor):
    """An ``.onnx`` build run by onnxruntime on the CPU (float or QDQ int8 inside)."""

    backend = "onnxruntime"

    def __init__(self, path: Path, num_threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError(
                "running .onnx needs onnxruntime: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = num_threads or os.cpu_count() or 1
        try:
            self._sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"],
                                              sess_options=opts)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelFileError(f"{path}: not a loadable ONNX model "
                                 f"({str(exc).splitlines()[0][:120]}); re-export it") from None
        meta = self._sess.get_modelmeta().custom_metadata_map
        embedded = (ModelSpec.from_json(meta[ONNX_KEY], f"{path} (embedded spec)")
                    if ONNX_KEY in meta else None)
        spec = resolve_spec(path, embedded, onnx_model_bytes(Path(path).read_bytes()))
        super().__init__(path, spec, opts.intra_op_num_threads)
        self._in = self._sess.get_inputs()[0]
        self._out = self._sess.get_outputs()[0]
        self.input_dtype = np.dtype(_DTYPES.get(self._in.type, "float32"))
        self._check_io(tuple(self._in.shape), _DTYPES.get(self._in.type, self._in.type),
                       self._out.shape[-1])

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._sess.run([self._out.name], {self._in.name: x})[0].astype(np.float32)
