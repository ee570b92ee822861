"""``fer-edge demo`` arguments. Light tier."""

from __future__ import annotations

import argparse
import json

from fer_edge.config import add_config_parser, config_from_args
from fer_edge.demo.config import DemoConfig


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(
        sub, "demo", DemoConfig, help="real-time emotion recognition on camera, video or images",
        description="Detect faces, classify them with an exported build (no TensorFlow), track "
                    "and smooth them, and show/save/log the result. Press q or Ctrl-C to stop.")


def run(args: argparse.Namespace) -> int:
    from fer_edge.demo.loop import run_demo

    stats = run_demo(config_from_args(DemoConfig, args))
    s = stats.summary()
    print(("stopped by Ctrl-C; " if stats.interrupted else "") +
          f"{s['frames']} frames in {s['seconds']:.1f} s = {s['fps']} FPS; median ms per frame: "
          f"detect {s['detect_ms']}, classify {s['classify_ms']}, draw {s['draw_ms']}; "
          f"dropped {s['dropped']}; peak memory {s['peak_rss_mb']} MB")
    if args.verbose if hasattr(args, "verbose") else False:
        print(json.dumps(s))
    return 0
