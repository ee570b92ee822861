"""``fer-edge convert`` arguments. Light tier: TensorFlow is imported only in :func:`run`."""

from __future__ import annotations

import argparse

from fer_edge.config import add_config_parser, config_from_args
from fer_edge.convert.config import ConvertConfig
from fer_edge.errors import require_training_stack


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(
        sub, "convert", ConvertConfig, help="QAT + TFLite/ONNX builds + per-class parity gate",
        description="Turn a trained float model into edge builds (TFLite float32, TFLite int8 "
                    "from quantization-aware training, ONNX float, ONNX int8) and check each "
                    "build class by class against the float model. Exit 3 if one falls short.")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(ConvertConfig, args)
    require_training_stack("convert")
    from fer_edge.convert.pipeline import run_convert

    run_convert(cfg)
    return 0
