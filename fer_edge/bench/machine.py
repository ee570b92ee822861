"""Describe the machine a measurement ran on. Light tier."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def cpu_name() -> str:
    """CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, str]:
    """Facts that change the numbers: host, CPU, cores, OS, Python and runtime versions."""
    import cv2
    import numpy as np

    facts = {"host": platform.node(), "cpu": cpu_name(), "cores": str(os.cpu_count()),
             "os": platform.platform(terse=True), "python": platform.python_version(),
             "numpy": np.__version__, "opencv": cv2.__version__}
    for dist in ("onnxruntime", "ai-edge-litert"):
        try:
            facts[dist.replace("-", "_")] = version(dist)
        except PackageNotFoundError:
            facts[dist.replace("-", "_")] = ""
    return facts
