"""Run exported builds without TensorFlow. Light tier: numpy, OpenCV and ONE of
``ai_edge_litert`` (``.tflite``) or ``onnxruntime`` (``.onnx``), imported on demand."""

from __future__ import annotations

from pathlib import Path

from fer_edge.errors import ModelFileError
from fer_edge.runtime.base import Predictor

__all__ = ["Predictor", "load_predictor", "default_model_path"]

_ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_MODEL = "fer_default_int8.tflite"


def default_model_path() -> Path | None:
    """The packaged default build, or None when this install has none."""
    p = _ASSETS / DEFAULT_MODEL
    return p if p.is_file() else None


def check_threads(num_threads: object) -> None:
    """``num_threads`` must be None/0 (all cores) or 1..MAX_THREADS (a typo like 100000 crashes
    the runtimes; a negative count is no count)."""
    from fer_edge.config import MAX_THREADS
    from fer_edge.errors import ConfigError

    ok = num_threads is None or (isinstance(num_threads, int) and not isinstance(
        num_threads, bool) and 0 <= num_threads <= MAX_THREADS)
    if not ok:
        raise ConfigError(f"--threads / num_threads {num_threads!r}: use 1..{MAX_THREADS} "
                          "(0 or None = all cores)")


def load_predictor(path: str | Path | None = None, num_threads: int | None = None) -> Predictor:
    """Load a ``.tflite`` or ``.onnx`` build (chosen by suffix) and check its spec.

    Args:
        path: the model file; None = the packaged default build.
        num_threads: CPU threads for the runtime, 1..MAX_THREADS; None or 0 = all cores.

    Raises:
        ModelFileError: missing, truncated or foreign file.
        SpecError: missing or mismatched model spec.
        BackendUnavailableError: the runtime for that format is not installed.
        ConfigError: a thread count out of range.
    """
    if path is None:
        path = default_model_path()
        if path is None:
            raise ModelFileError(
                "no model given and this install has no packaged default model; pass --model "
                "PATH to a .tflite/.onnx from `fer-edge convert` (train one with `fer-edge "
                "train`, then `fer-edge convert RUN --int8`)")
    check_threads(num_threads)
    if not isinstance(path, (str, Path)):
        from fer_edge.errors import InputError

        raise InputError(f"model path {path!r}: pass a .tflite/.onnx file path (str or "
                         "pathlib.Path), or None for the packaged default model")
    path = Path(path)
    kind = _model_kind(path)
    if kind == ".tflite":
        from fer_edge.runtime.litert import LiteRTPredictor

        return LiteRTPredictor(path, num_threads)
    from fer_edge.runtime.onnx import OnnxPredictor

    return OnnxPredictor(path, num_threads)


def _model_kind(path: Path) -> str:
    """".tflite" or ".onnx" for a model file whose content matches its name; ModelFileError
    naming the problem otherwise (a folder, a missing file, a TFLite named .onnx, ...)."""
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file; pass a .tflite/.onnx "
                             "build (a training run's builds are in its export/ folder)")
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    with path.open("rb") as f:
        head = f.read(8)
    suffix = path.suffix.lower()
    is_tflite = head[4:8] == b"TFL3"
    if suffix == ".tflite" and not is_tflite and _looks_like_onnx(head):
        raise ModelFileError(f"{path}: not a TFLite flatbuffer: its content looks like an ONNX "
                             "model: rename it to .onnx")
    if suffix == ".tflite" and not is_tflite:
        raise ModelFileError(f"{path}: not a TFLite flatbuffer (truncated or foreign file); "
                             "re-export it with `fer-edge convert`")
    if suffix == ".onnx" and is_tflite:
        raise ModelFileError(f"{path}: its content is a TFLite model, not ONNX: rename it to "
                             ".tflite")
    if suffix == ".onnx" and len(head) < 8:
        raise ModelFileError(f"{path}: file too small to be an ONNX model")
    if suffix not in (".tflite", ".onnx"):
        raise ModelFileError(f"{path}: unknown model type {suffix!r}; use a .tflite or .onnx "
                             "build")
    return suffix


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto starts with field 1 (ir_version, a small varint): 0x08 0x0N."""
    return len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 20
