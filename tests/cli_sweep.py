"""The hardening sweep's contract and workspace (issues 12 and 34), shared by the test modules.

A CLI case runs ``fer-edge ...`` in-process on a prepared workspace and checks the project's
contract for bad input: exit 2 (3 for a failed gate), exactly one ``fer-edge <cmd>: error:``
line (the last one on stderr) naming the problem, with what to do, no traceback, and no file of
the workspace created, changed or removed. Cases that already behaved are kept so they stay
that way. ``make_workspace`` builds the workspace the ``ws`` fixture (conftest.py) gives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_spec

from fer_edge.cli import main
from fer_edge.data.synthetic import write_csv, write_npz
from fer_edge.runtime import default_model_path
from fer_edge.runtime.spec_io import SPEC_ENTRY, bind, sidecar_path, tflite_model_bytes
from fer_edge.train.config import TrainConfig

DEFAULT = default_model_path()
needs_default = pytest.mark.skipif(DEFAULT is None, reason="this checkout has no packaged model")


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a digest of its content and mode (files of
    1 MB or more by size and mtime)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_symlink():
            out[str(p)] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[str(p)] = "dir"
        else:
            st = p.stat()
            small = st.st_size < 1 << 20
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest() if small else
                           f"{st.st_size}:{st.st_mtime_ns}") + oct(st.st_mode)
    return out


def run_cli(args: list, capsys) -> tuple[int, list[str], str]:
    """``fer-edge ARGS`` in-process: (exit code, stderr lines, stdout)."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.err.strip().splitlines(), cap.out


def assert_refused(args: list, capsys, workspace: Path, *words: str) -> str:
    """The command exits 2 with one error line holding ``words``, and ``workspace`` is left
    exactly as it was; returns the error line."""
    before = snapshot(workspace)
    rc, err, _ = run_cli(args, capsys)
    assert rc == 2, err
    assert not any("Traceback" in ln for ln in err), err
    ours = [ln for ln in err if ln.startswith("fer-edge")]
    assert len(ours) == 1 and ours[0] == err[-1] and ": error: " in ours[0], err
    for w in words:
        assert w in ours[0], f"{w!r} not in {ours[0]!r}"
    assert snapshot(workspace) == before, "a file of the workspace was created, changed or lost"
    return ours[0]


def rezip(data: bytes, edit) -> bytes:
    """A .tflite whose embedded spec dict went through ``edit`` (sha256 kept as it was)."""
    flat = tflite_model_bytes(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        d = json.loads(z.read(SPEC_ENTRY))
    edit(d)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(SPEC_ENTRY, json.dumps(d))
    return flat + buf.getvalue()


def make_workspace(tmp_path_factory) -> Path:
    """The sweep's workspace: data files good and bad, recipes, outputs that already exist,
    a bound copy of the packaged model and tampered builds, a run and a fake run folder."""
    if DEFAULT is None:
        pytest.skip("this checkout has no packaged model")
    w = tmp_path_factory.mktemp("sweep")
    for name in ("existing.csv", "existing.mp4", "existing.jsonl", "afile"):
        (w / name).write_text("keep me\n")
    (w / "dir.csv").mkdir()
    (w / "full.csv").symlink_to("/dev/full")
    write_npz(w / "syn.npz", 70, 28, 28)
    csv_path = write_csv(w / "syn.csv", 21, 14, 14)
    text = csv_path.read_text()
    (w / "utf16.csv").write_bytes(text.encode("utf-16"))
    (w / "latin1.csv").write_bytes(text.encode() + "3,caf\xe9,Training\n".encode("latin-1"))
    rows = [r.rsplit(",", 1)[0] for r in text.splitlines()]
    (w / "nousage.csv").write_text("emotion,pixels\n" + "\n".join(rows[1:]) + "\n")
    (w / "binary.csv").write_bytes(b"emotion,pixels,Usage\n" + b"\x00" * 50 + b"\n")
    (w / "empty.npz").write_bytes(b"")
    np.savez(w / "noarrays.npz")
    np.savez(w / "badusage.npz", images=np.zeros((3, 48, 48), np.uint8),
             labels=np.zeros(3, np.uint8), usage=np.array([0, 1, 7], np.uint8))
    (w / "notes.txt").write_text("not data")
    # recipes
    rec = {"bad_type": '[train]\nbatch_size = "sixteen"\n', "list": "[train]\nbatch_size = [16]\n",
           "typo_section": "[trian]\nbatch_size = 16\n", "typo_key": "[train]\nbatchsize = 16\n",
           "demo_ema": '[demo]\nema = "high"\n', "bad_choice": '[train]\nloss = "hinge"\n',
           "neg_lr": "[train]\nfinetune_lr = -0.1\n", "invalid": "[train\nx = 1\n",
           "other_stage": "[convert]\nint8 = true\n", "flat_and_table": "seed = 1\n[train]\n",
           "bool_type": '[train]\naugment = "yes"\n', "resume_size": "[train]\ninput_size = 96\n"}
    for k, v in rec.items():
        (w / f"{k}.toml").write_text(v)
    (w / "utf16.toml").write_bytes("[train]\nseed = 1\n".encode("utf-16"))
    # builds: the packaged model bound to its spec, and tampered copies
    data = DEFAULT.read_bytes()
    (w / "model.tflite").write_bytes(data)
    bound = data

    def swap(d):
        d["labels"][3], d["labels"][4] = d["labels"][4], d["labels"][3]

    (w / "swapped.tflite").write_bytes(rezip(bound, swap))
    (w / "nonnumeric.tflite").write_bytes(rezip(bound, lambda d: d.update(input_size="abc")))
    (w / "noscale.tflite").write_bytes(rezip(bound, lambda d: d.update(norm_scale=None)))
    (w / "truncated.tflite").write_bytes(bound[:3000])
    (w / "foreign.onnx").write_bytes(b"this is not a model at all")
    (w / "model.pb").write_bytes(b"x")
    flat = tflite_model_bytes(bound)
    (w / "bare.tflite").write_bytes(flat)  # no spec inside, sidecar bound to other weights
    bind(b"other weights", make_spec(input_dtype="int8")).write(sidecar_path(w / "bare.tflite"))
    (w / "nospec.tflite").write_bytes(flat)
    # a finished run (config.json is what --resume reads) and a fake run for convert
    runs = w / "runs" / "r1"
    runs.mkdir(parents=True)
    cfg = TrainConfig(data=str(w / "syn.npz"), arch="tiny_cnn", input_size=32, weights="none")
    (runs / "config.json").write_text(json.dumps({"config": dataclasses.asdict(cfg)}))
    run = w / "run"
    (run / "export").mkdir(parents=True)
    (run / "model_float.h5").write_bytes(b"not really a model")
    make_spec().write(run / "spec.json")
    (run / "config.json").write_text(json.dumps({"config": {"data": str(w / "syn.npz")}}))
    (run / "export" / "fer_inception_v3_75_fp32.tflite").write_bytes(b"an earlier build")
    (w / "emptyrun").mkdir()
    return w
