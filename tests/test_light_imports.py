"""The inference path never imports TensorFlow (a Raspberry Pi has only the light install)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import fer_edge, fer_edge.cli, fer_edge.runtime, fer_edge.evaluate, fer_edge.preprocess
import fer_edge.data, fer_edge.metrics, fer_edge.evaluate_cli
for mod in ("fer_edge.faces", "fer_edge.demo.cli", "fer_edge.bench.cli"):
    try:
        __import__(mod)
    except ModuleNotFoundError:
        pass
parser = fer_edge.cli.build_parser()
for cmd in ("demo", "evaluate", "benchmark", "convert", "train"):
    try:
        parser.parse_args([cmd, "--help"])
    except SystemExit:
        pass
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print("HEAVY:" + ",".join(bad))
"""


def test_light_path_does_not_import_tensorflow():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "HEAVY:\n" in r.stdout or r.stdout.strip().endswith("HEAVY:"), r.stdout[-500:]
