"""The inference path never imports TensorFlow (a Raspberry Pi has only the light install)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import fer_edge, fer_edge.cli, fer_edge.runtime, fer_edge.evaluate, fer_edge.preprocess
import fer_edge.data, fer_edge.metrics, fer_edge.evaluate_cli, fer_edge.evaluate_people
import fer_edge.data.people
import fer_edge.detect, fer_edge.demo.cli, fer_edge.demo.loop, fer_edge.bench.cli
import fer_edge.bench.one, fer_edge.train.cli, fer_edge.train.runs, fer_edge.convert.cli
import fer_edge.serve.cli, fer_edge.serve.app, fer_edge.serve.video
parser = fer_edge.cli.build_parser()
for cmd in ("demo", "serve", "evaluate", "benchmark", "convert", "train"):
    try:
        parser.parse_args([cmd, "--help"])
    except SystemExit as exc:
        assert exc.code == 0, (cmd, exc.code)  # --help exits 0; anything else is a failure
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print("HEAVY:" + ",".join(bad))
"""


def test_light_path_does_not_import_tensorflow():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]  # an ImportError anywhere fails here
    assert r.stdout.strip().splitlines()[-1] == "HEAVY:", r.stdout[-500:]
