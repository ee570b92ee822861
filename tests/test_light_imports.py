"""The inference path never imports TensorFlow (a Raspberry Pi has only the light install)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_sweep import snapshot

ROOT = Path(__file__).resolve().parents[1]

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


# --- the light install: TensorFlow and matplotlib absent ---------------------------------------

LIGHT = r"""
import json, sys
for m in ("tensorflow", "tf_keras", "tensorflow_model_optimization", "tf2onnx", "matplotlib"):
    sys.modules[m] = None  # as if not installed: import fails, find_spec says None
import contextlib, io
from fer_edge.cli import main
W, OUT = sys.argv[1], sys.argv[2]
res = {}
for name, args in {
    "train": ["train", "--data", "synthetic", "--weights", "none", "--runs-dir", OUT + "/runs"],
    "convert": ["convert", W + "/run", "--out", OUT + "/conv"],
    "evaluate": ["evaluate", W + "/model.tflite", "--data", W + "/syn.npz", "--limit", "14",
                 "--latency-runs", "2", "--out", OUT + "/rep"],
}.items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(args)
    res[name] = [rc, err.getvalue()]
res["heavy"] = sorted(m for m, v in sys.modules.items() if v is not None and
                      m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "matplotlib"))
print(json.dumps(res))
"""


def test_light_install_train_convert_and_evaluate(ws, tmp_path):
    """One subprocess with TensorFlow and matplotlib made unimportable."""
    before = snapshot(ws)
    r = subprocess.run([sys.executable, "-c", LIGHT, str(ws), str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for cmd in ("train", "convert"):
        rc, err = res[cmd]
        lines = err.strip().splitlines()
        assert rc == 2 and "Traceback" not in err, err
        assert lines[-1].startswith(f"fer-edge {cmd}: error:") and ".[train]" in lines[-1]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "conv").exists()
    rc, err = res["evaluate"]
    assert rc == 0 and "matplotlib is not installed" in err, err
    assert (tmp_path / "rep" / "report.md").is_file() and not list((tmp_path / "rep").glob("*.png"))
    assert res["heavy"] == []
    assert snapshot(ws) == before
