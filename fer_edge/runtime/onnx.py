"""onnxruntime backend for ``.onnx`` builds. Light tier."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import numpy as np

from fer_edge.errors import BackendUnavailableError, ModelFileError
from fer_edge.runtime.base import Predictor
from fer_edge.runtime.spec_io import ONNX_KEY, onnx_model_bytes, resolve_spec
from fer_edge.spec import ModelSpec

_DTYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


@functools.cache
def u8s8_may_saturate() -> bool:
    """True on an x86 CPU whose int8 kernels in onnxruntime can saturate.

    Without VNNI (AVX2-only or AVX-512 without VNNI), onnxruntime multiplies uint8
    activations by int8 weights with ``vpmaddubsw``, which sums pairs of products into int16
    and saturates there. Measured on an AVX2-only AMD EPYC: a tiny fer-edge int8 ONNX moved up
    to 0.10 in probability from its int8 TFLite and, in one conversion, failed the parity gate
    on a class; with onnxruntime's ``session.x64quantprecision`` mode (u8 x u8, which cannot
    saturate) it stayed within 0.002. VNNI CPUs and ARM do not saturate. An x86 CPU whose
    flags cannot be read (not Linux) counts as one that may.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = None
    return saturating_cpu(platform.machine(), cpuinfo)


def saturating_cpu(machine: str, cpuinfo: str | None) -> bool:
    """:func:`u8s8_may_saturate` for a given ``platform.machine()`` and /proc/cpuinfo text
    (None: unreadable)."""
    if machine.lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    if cpuinfo is None:
        return True
    flags = set(cpuinfo.split())
    return not flags & {"avx512_vnni", "avx_vnni", "avx512vnni"}


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
        #: onnxruntime's exact u8 x u8 int8 kernels where its u8 x s8 ones can saturate
        self.exact_int8 = u8s8_may_saturate()
        if self.exact_int8:
            opts.add_session_config_entry("session.x64quantprecision", "1")
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
        outs = self._sess.get_outputs()
        p, e = self._output_roles([o.name for o in outs])
        self._out, self._emb = outs[p], (outs[e] if e is not None else None)
        self.input_dtype = np.dtype(_DTYPES.get(self._in.type, "float32"))
        self._check_io(tuple(self._in.shape), _DTYPES.get(self._in.type, self._in.type),
                       self._out.shape[-1], None if self._emb is None else self._emb.shape[-1])

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """onnxruntime sessions are safe to run from several threads at once."""
        names = [self._out.name] + ([] if self._emb is None else [self._emb.name])
        ys = self._sess.run(names, {self._in.name: x})
        emb = ys[1].astype(np.float32) if self._emb is not None else None
        return ys[0].astype(np.float32), emb
