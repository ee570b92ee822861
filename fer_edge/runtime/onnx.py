"""onnxruntime backend for ``.onnx`` builds. Light tier."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_edge.errors import BackendUnavailableError, ModelFileError, SpecError
from fer_edge.runtime.base import Predictor
from fer_edge.runtime.spec_io import ONNX_KEY, resolve_spec
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
        try:
            sess_probe = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"],
                                              sess_options=opts)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelFileError(f"{path}: not a loadable ONNX model "
                                 f"({str(exc).splitlines()[0][:120]}); re-export it") from None
        meta = sess_probe.get_modelmeta().custom_metadata_map
        embedded = (ModelSpec.from_json(meta[ONNX_KEY], f"{path} (embedded spec)")
                    if ONNX_KEY in meta else None)
        spec = resolve_spec(path, embedded)
        super().__init__(path, spec, num_threads)
        opts.intra_op_num_threads = self.num_threads
        self._sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"],
                                          sess_options=opts)
        self._in = self._sess.get_inputs()[0]
        self._out = self._sess.get_outputs()[0]
        self.input_dtype = np.dtype(_DTYPES.get(self._in.type, "float32"))
        self._check()

    def _check(self) -> None:
        s = self.spec
        shape = tuple(self._in.shape)
        want = (s.input_size, s.input_size, s.channels)
        if len(shape) != 4 or tuple(shape[1:]) != want:
            raise SpecError(f"{self.path}: model input {shape} does not match the spec's "
                            f"(N, {want[0]}, {want[1]}, {want[2]})")
        real = _DTYPES.get(self._in.type, self._in.type)
        if real != s.input_dtype:
            raise SpecError(f"{self.path}: model input is {real} but the spec says "
                            f"{s.input_dtype}")
        n_out = self._out.shape[-1]
        if isinstance(n_out, int) and n_out != s.num_classes:
            raise SpecError(f"{self.path}: model has {n_out} outputs but the spec lists "
                            f"{s.num_classes} labels")

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._sess.run([self._out.name], {self._in.name: x})[0].astype(np.float32)
