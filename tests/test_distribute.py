"""``fer-edge train --distribute`` / ``--mixed-precision`` / ``--xla`` on CPU.

MirroredStrategy runs over 2 logical CPU devices (they must be made before TensorFlow
initialises its devices, so in a subprocess); MultiWorkerMirroredStrategy over two worker
processes on 127.0.0.1. Every subprocess is bounded by a timeout and killed (SIGKILL: a
process blocked in TensorFlow's coordination service ignores SIGTERM) when it runs over.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, TINY_TRAIN_ARGS

from fer_edge.errors import ClusterError
from fer_edge.train.cluster import parse_tf_config, wait_for_peers

#: a tiny_cnn run of a few steps: 64 training faces at batch 16
QUICK = ["--data", "synthetic", "--weights", "none", "--limit", "64", "--finetune-epochs", "1",
         *TINY_TRAIN_ARGS]

#: runs `fer-edge train` after splitting the CPU into 2 logical devices
TWO_CPUS = """
import sys
from fer_edge.train._keras import tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from fer_edge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _ours(stderr: str) -> list[str]:
    """fer-edge's own error lines (TensorFlow's C++ log lines cannot be silenced)."""
    return [ln for ln in stderr.splitlines() if ln.startswith("fer-edge")]


def _run_workers(tmp_path, args: list[str], timeout: float, n: int = 2,
                 only: list[int] | None = None) -> list[tuple[int, str]]:
    """Start ``fer-edge train ARGS`` as the workers of an n-task cluster on 127.0.0.1
    (``only``: start just these task indices); returns (exit code, log) per started task.
    Every process is killed when the whole lot has not finished within ``timeout``."""
    ports = _free_ports(n)
    procs = []
    for i in (range(n) if only is None else only):
        logf = (tmp_path / f"worker{i}.log").open("w+")
        env = {**os.environ, "TF_CONFIG": _tf_config(ports, i)}
        procs.append((subprocess.Popen([sys.executable, "-m", "fer_edge", "train", *args],
                                       cwd=ROOT, env=env, stdout=logf,
                                       stderr=subprocess.STDOUT), logf))
    deadline = time.monotonic() + timeout
    out = []
    try:
        for p, _ in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p, logf in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            logf.seek(0)
            out.append((p.returncode, logf.read()))
            logf.close()
    return out


# ---------------------------------------------------------------------------------------------
# TF_CONFIG (light: no TensorFlow)


@pytest.mark.parametrize("raw, needle", [
    (None, "needs the TF_CONFIG environment variable"),
    ("", "needs the TF_CONFIG environment variable"),
    ("{not json", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'no "cluster"'),
    ('{"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}',
     "non-empty list"),
    ('{"cluster": {"worker": ["h0"]}, "task": {"type": "worker", "index": 0}}',
     "is not host:port"),
    ('{"cluster": {"worker": ["h0:99999"]}, "task": {"type": "worker", "index": 0}}',
     "is not host:port"),
    ('{"cluster": {"ps": ["h0:1"]}, "task": {"type": "ps", "index": 0}}', "not supported"),
    ('{"cluster": {"worker": ["h:1", "h:1"]}, "task": {"type": "worker", "index": 0}}',
     "more than once"),
    ('{"cluster": {"worker": ["h0:1", "h1:1"]}}', 'no "task"'),
    ('{"cluster": {"worker": ["h0:1"]}, "task": {"type": "chief", "index": 0}}',
     "not a job of its cluster"),
    ('{"cluster": {"worker": ["h0:1", "h1:1"]}, "task": {"type": "worker", "index": 2}}',
     "out of range"),
])
def test_bad_tf_config_names_the_problem(raw, needle):
    with pytest.raises(ClusterError, match=needle) as exc:
        parse_tf_config(raw)
    assert "\n" not in str(exc.value)


def test_tf_config_roles():
    c = parse_tf_config(_tf_config([1001, 1002, 1003], 2))
    assert (c.num_workers, c.is_chief, c.address) == (3, False, "127.0.0.1:1003")
    assert [n for n, _ in c.peers()] == ["worker 0", "worker 1"]
    assert parse_tf_config(_tf_config([1001, 1002], 0)).is_chief
    chief = parse_tf_config(json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1"]},
                                        "task": {"type": "worker", "index": 0}}))
    assert not chief.is_chief and chief.chief == ("chief", 0)


def test_unreachable_peer_times_out():
    port = _free_ports(1)[0]  # nothing listens there
    c = parse_tf_config(_tf_config([_free_ports(1)[0], port], 0))
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=f"worker 1 at 127.0.0.1:{port} did not answer "
                                           "within 1 s"):
        wait_for_peers(c, timeout=1.0, poll=0.2)
    assert time.monotonic() - t0 < 5


# ---------------------------------------------------------------------------------------------
# CLI bad input (TensorFlow imported, but no strategy made)


@pytest.mark.tf
@pytest.mark.parametrize("raw", [None, "[1, 2]"])
def test_multiworker_without_valid_tf_config_exit_2(tmp_path, monkeypatch, capsys, raw):
    from fer_edge.cli import main

    if raw is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", raw)
    assert main(["train", *QUICK, "--distribute", "multiworker", "--runs-dir",
                 str(tmp_path)]) == 2
    err = _ours(capsys.readouterr().err)
    assert len(err) == 1 and "TF_CONFIG" in err[0] and "e.g. TF_CONFIG=" in err[0]
    assert not any(tmp_path.iterdir())  # no run folder for bad input


@pytest.mark.tf
def test_precision_the_device_cannot_run_exit_2(tmp_path, monkeypatch, capsys):
    """A device without float16 kernels (stood in for by a probe that fails as TensorFlow
    does when an op has no kernel for the dtype) stops with one line and the fix."""
    from fer_edge.cli import main
    from fer_edge.train import distribute
    from fer_edge.train._keras import keras, tf

    def no_kernel(strategy):
        raise tf.errors.NotFoundError(None, None, "Could not find device for node: Conv2D = "
                                      "Conv2D[T=DT_HALF]")

    monkeypatch.setattr(distribute, "_probe_step", no_kernel)
    assert main(["train", *QUICK, "--mixed-precision", "float16", "--runs-dir",
                 str(tmp_path)]) == 2
    err = _ours(capsys.readouterr().err)
    assert len(err) == 1 and "cannot train in float16" in err[0]
    assert "use --mixed-precision no or bfloat16" in err[0]
    assert keras.mixed_precision.global_policy().name == "float32"
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# training under each strategy / precision


@pytest.mark.tf
def test_two_workers_train_one_epoch_chief_writes_a_run_that_converts(tmp_path):
    from fer_edge.cli import main

    runs = tmp_path / "runs"
    res = _run_workers(tmp_path, [*QUICK, "--runs-dir", str(runs), "--name", "mw",
                                  "--peer-timeout", "60"], timeout=240)
    logs = "\n\n".join(f"--- worker {i} (exit {rc}) ---\n{log}" for i, (rc, log) in
                       enumerate(res))
    assert [rc for rc, _ in res] == [0, 0], logs
    for i, (_, log) in enumerate(res):
        assert f"worker {i}: 2 workers, 2 replicas in sync" in log, logs
        assert "multiworker, 2 replica(s)" in log, logs
    # one synchronised start (the chief's initial weights) on both workers
    sums = [[ln.rsplit("checksum", 1)[1] for ln in log.splitlines() if "checksum" in ln]
            for _, log in res]
    assert sums[0] and sums[0] == sums[1], logs
    # one run folder, the chief's; the worker's scratch copy is gone
    assert [p.name for p in runs.iterdir()] == ["mw"]
    run = runs / "mw"
    assert (run / "model_float.h5").is_file() and (run / "eval/test_report.json").is_file()
    scratch = [ln.split(" goes to ")[1].split(" ")[0] for ln in res[1][1].splitlines()
               if " goes to " in ln]
    assert scratch and not os.path.exists(scratch[0])
    assert main(["convert", str(run), "--no-onnx-fp32", "--latency-runs", "2"]) == 0
    builds = json.loads((run / "export/report.json").read_text())["parity"]["builds"]
    assert list(builds) == ["fer_tiny_cnn_32_fp32.tflite"]
    assert builds["fer_tiny_cnn_32_fp32.tflite"]["failures"] == []


@pytest.mark.tf
def test_smoke_recipe_mirrored_over_two_logical_cpus(tmp_path):
    smoke = ["--config", str(ROOT / "train/smoke.toml"), "--limit", "64", "--finetune-epochs",
             "1", "--runs-dir", str(tmp_path)]
    r = subprocess.run([sys.executable, "-c", TWO_CPUS, "train", *smoke, "--distribute",
                        "mirrored", "--name", "m"],
                       cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mirrored, 2 replica(s)" in r.stderr
    assert (tmp_path / "m/model_float.h5").is_file()
    assert (tmp_path / "m/eval/test_report.json").is_file()


@pytest.mark.tf
@pytest.mark.slow
def test_smoke_recipe_with_xla(tmp_path):
    from fer_edge.cli import main

    assert main(["train", "--config", str(ROOT / "train/smoke.toml"), "--limit", "64",
                 "--finetune-epochs", "1", "--xla", "--runs-dir", str(tmp_path),
                 "--name", "x"]) == 0
    assert (tmp_path / "x/eval/test_report.json").is_file()


def _tflite_probs(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    dtypes = {d["dtype"] for d in it.get_tensor_details()}
    return it.get_tensor(out["index"]), dtypes


@pytest.mark.tf
@pytest.mark.parametrize("precision", ["bfloat16",
                                       pytest.param("float16", marks=pytest.mark.slow)])
def test_mixed_precision_trains_and_converts_like_float32(tmp_path, precision):
    import h5py

    from fer_edge.cli import main
    from fer_edge.spec import ModelSpec
    from fer_edge.train._keras import keras
    from fer_edge.train.model import build_model

    try:
        assert main(["train", *QUICK, "--mixed-precision", precision, "--runs-dir",
                     str(tmp_path), "--name", "mp"]) == 0
    finally:
        keras.mixed_precision.set_global_policy("float32")
    run = tmp_path / "mp"
    hist = (run / "history.csv").read_text().splitlines()
    assert len(hist) == 2 and "nan" not in hist[1]
    with h5py.File(run / "model_float.h5") as f:
        config = f.attrs["model_config"]
    assert "mixed_" not in config  # saved as the float32 model it is

    # the same weights put into a float32 model by hand convert to the same build
    spec = ModelSpec.read(run / "spec.json")
    ref = tmp_path / "ref"
    ref.mkdir()
    model = build_model(spec, "none")
    model.load_weights(run / "model_float.h5")
    model.save(ref / "model_float.h5", include_optimizer=False)
    (ref / "spec.json").write_text((run / "spec.json").read_text())
    common = ["--no-onnx-fp32", "--latency-runs", "2", "--data", "synthetic"]
    assert main(["convert", str(run), *common]) == 0
    assert main(["convert", str(ref), *common]) == 0
    name = next((run / "export").glob("*_fp32.tflite")).name
    x = np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    p_mp, dtypes = _tflite_probs(run / "export" / name, x)
    p_ref, _ = _tflite_probs(ref / "export" / name, x)
    assert dtypes <= {np.float32, np.int32}, dtypes  # no float16/bfloat16 left in the build
    np.testing.assert_array_equal(p_mp, p_ref)
    assert (run / "export" / name).stat().st_size == (ref / "export" / name).stat().st_size


# ---------------------------------------------------------------------------------------------
# slower variants (--slow)


@pytest.mark.tf
@pytest.mark.slow
def test_worker_whose_chief_never_comes_times_out(tmp_path):
    """A non-chief worker alone: TensorFlow's registration with the chief times out; one
    line, exit 2, no hang, its scratch folder removed."""
    [(rc, log)] = _run_workers(tmp_path, [*QUICK, "--runs-dir", str(tmp_path / "runs"),
                                          "--peer-timeout", "5"], timeout=120, only=[1])
    assert rc == 2, log
    ours = _ours(log)
    assert len(ours) == 1 and "could not join the cluster through the chief" in ours[0], log
    assert "Traceback" not in log
    assert not (tmp_path / "runs").exists()


@pytest.mark.tf
@pytest.mark.slow
def test_chief_whose_worker_never_comes_times_out(tmp_path):
    [(rc, log)] = _run_workers(tmp_path, [*QUICK, "--runs-dir", str(tmp_path / "runs"),
                                          "--peer-timeout", "5"], timeout=120, only=[0])
    assert rc == 2, log
    ours = _ours(log)
    assert len(ours) == 1 and "worker 1 at 127.0.0.1:" in ours[0] and "5 s" in ours[0], log
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # the started run folder is removed


@pytest.mark.tf
@pytest.mark.slow
def test_two_workers_resume_from_the_chiefs_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    base = ["--runs-dir", str(runs), "--name", "mw", "--peer-timeout", "60"]
    res = _run_workers(tmp_path, [*QUICK, *base], timeout=240)
    assert [rc for rc, _ in res] == [0, 0], res
    res = _run_workers(tmp_path, ["--resume", "--finetune-epochs", "2", *base], timeout=240)
    logs = "\n".join(log for _, log in res)
    assert [rc for rc, _ in res] == [0, 0], logs
    assert "resumed after epoch 1" in res[0][1]
    for _, log in res:
        assert "continuing after epoch 1" in log, logs
    sums = [[ln.rsplit("checksum", 1)[1] for ln in log.splitlines() if "checksum" in ln]
            for _, log in res]
    assert sums[0] and sums[0] == sums[1], logs
    hist = (runs / "mw/history.csv").read_text().splitlines()
    assert [ln.split(",")[1] for ln in hist[1:]] == ["1", "2"]


@pytest.mark.tf
@pytest.mark.slow
def test_full_smoke_recipe_with_xla_learns(tmp_path):
    from fer_edge.cli import main

    assert main(["train", "--config", str(ROOT / "train/smoke.toml"), "--xla", "--runs-dir",
                 str(tmp_path), "--name", "x"]) == 0
    rep = json.loads((tmp_path / "x/eval/test_report.json").read_text())
    assert rep["models"]["float"]["accuracy"] > 0.5


@pytest.mark.tf
@pytest.mark.slow
def test_worker_lost_during_training_stops_the_chief(tmp_path):
    """Worker 1 is killed in its first epoch: the chief's next collective op fails within
    --peer-timeout; one line, exit 2, never a hang."""
    ports = _free_ports(2)
    args = [sys.executable, "-m", "fer_edge", "train", "--config", str(ROOT / "train/smoke.toml"),
            "--finetune-epochs", "50", "--runs-dir", str(tmp_path / "runs"), "--name", "mw",
            "--peer-timeout", "20"]
    logs = [(tmp_path / f"worker{i}.log").open("w+") for i in range(2)]
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=logs[i], stderr=subprocess.STDOUT,
                              env={**os.environ, "TF_CONFIG": _tf_config(ports, i)})
             for i in range(2)]
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and "finetune epoch 1:" not in (
                tmp_path / "worker1.log").read_text():
            assert procs[1].poll() is None, (tmp_path / "worker1.log").read_text()
            time.sleep(0.5)
        procs[1].kill()
        t0 = time.monotonic()
        rc = procs[0].wait(timeout=180)
        waited = time.monotonic() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
        # the killed worker could not remove its scratch folder (SIGKILL): do it here
        for ln in (tmp_path / "worker1.log").read_text().splitlines():
            if " goes to " in ln:
                shutil.rmtree(ln.split(" goes to ")[1].split(" ")[0], ignore_errors=True)
    log = (tmp_path / "worker0.log").read_text()
    assert rc == 2, log
    ours = _ours(log)
    assert len(ours) == 1 and "lost the other workers during training" in ours[0], log
    assert "Traceback" not in log
    assert waited < 120, waited
    assert (tmp_path / "runs/mw/history.csv").is_file()  # epochs done so far stay resumable
