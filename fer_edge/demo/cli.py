"""``fer-edge demo`` arguments. Light tier."""

from __future__ import annotations

import argparse
import json
import sys

from fer_edge.config import add_config_parser, config_from_args
from fer_edge.demo.config import DemoConfig


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(
        sub, "demo", DemoConfig, help="real-time emotion recognition on camera, video or images",
        description="Detect faces, classify them with an exported build (no TensorFlow), track "
                    "and smooth them, and show/save/log the result. Press q or Ctrl-C to stop.")


def run(args: argparse.Namespace) -> int:
    from fer_edge.demo.loop import run_demo
    from fer_edge.demo.report import summary_lines

    cfg = config_from_args(DemoConfig, args)
    stats = run_demo(cfg)
    out = sys.stderr if cfg.log_to_stdout else sys.stdout  # stdout carries the rows then
    for line in summary_lines(stats, photos=bool(cfg.images), log=cfg.log):
        print(line, file=out)
    if args.verbose if hasattr(args, "verbose") else False:
        print(json.dumps(stats.summary()), file=out)
    return 0
