"""The hardening sweep (issue 12): bad input and faults across every command and the API.

Each CLI case runs ``fer-edge ...`` in-process on a prepared workspace and checks the project's
contract for bad input: exit 2 (3 for a failed gate), exactly one ``fer-edge <cmd>: error:``
line (the last one on stderr) naming the problem, with what to do, no traceback, and no file of
the workspace created, changed or removed. Cases that already behaved are kept here so they
stay that way. Light tier: no TensorFlow (the few TF cases live at the end, marked ``tf``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shlex
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import HAS_TF, make_spec

from fer_edge.cli import main
from fer_edge.config import make_config, read_toml
from fer_edge.data.synthetic import write_csv, write_npz
from fer_edge.errors import ConfigError, FerEdgeError, InputError, SpecError
from fer_edge.runtime import default_model_path, load_predictor
from fer_edge.runtime.spec_io import (
    SPEC_ENTRY,
    bind,
    embed_in_onnx,
    read_tflite_spec,
    sidecar_path,
    tflite_model_bytes,
)
from fer_edge.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = default_model_path()
needs_default = pytest.mark.skipif(DEFAULT is None, reason="this checkout has no packaged model")


def _rezip(data: bytes, edit) -> bytes:
    """A .tflite whose embedded spec dict went through ``edit`` (sha256 kept as it was)."""
    flat = tflite_model_bytes(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        d = json.loads(z.read(SPEC_ENTRY))
    edit(d)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(SPEC_ENTRY, json.dumps(d))
    return flat + buf.getvalue()


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
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

    (w / "swapped.tflite").write_bytes(_rezip(bound, swap))
    (w / "nonnumeric.tflite").write_bytes(_rezip(bound, lambda d: d.update(input_size="abc")))
    (w / "noscale.tflite").write_bytes(_rezip(bound, lambda d: d.update(norm_scale=None)))
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


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a digest of its content and mode."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[str(p)] = "dir"
        else:
            st = p.stat()
            small = st.st_size < 1 << 20  # content of small files; big ones by size + mtime
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest() if small else
                           f"{st.st_size}:{st.st_mtime_ns}") + oct(st.st_mode)
    return out


def run_cli(args: list[str], capsys) -> tuple[int, list[str], str]:
    capsys.readouterr()
    rc = main(args)
    cap = capsys.readouterr()
    return rc, cap.err.strip().splitlines(), cap.out


# (id, command with {W} for the workspace, expected exit code, words the error line must hold)
BAD = [
    # --- silent data loss: outputs that exist are refused without --force -------------------
    ("demo-log-exists", "demo --video sample --headless --log {W}/existing.csv", 2,
     ["existing.csv", "exists", "--force"]),
    ("demo-jsonl-exists", "demo --video sample --headless --log {W}/existing.jsonl", 2,
     ["exists", "--force"]),
    ("demo-save-exists", "demo --video sample --headless --save {W}/existing.mp4", 2,
     ["existing.mp4", "exists", "--force"]),
    ("demo-log-is-folder", "demo --video sample --headless --log {W}/dir.csv", 2,
     ["is a folder"]),
    ("demo-log-parent-is-file", "demo --video sample --headless --log {W}/afile/x.csv", 2,
     ["afile is a file", "choose another path"]),
    ("demo-save-parent-is-file", "demo --video sample --headless --save {W}/afile/x.mp4", 2,
     ["is a file"]),
    ("demo-log-unwritable", "demo --video sample --headless --log /proc/nope/x.csv", 2,
     ["cannot write in /proc", "choose a folder"]),
    ("demo-save-unwritable", "demo --video sample --headless --save /proc/nope/x.mp4", 2,
     ["cannot write in /proc"]),
    ("demo-log-disk-full", "demo --video sample --headless --force --max-frames 30 "
     "--model {W}/model.tflite --log {W}/full.csv", 2, ["full.csv", "No space left",
                                                         "free some disk space"]),
    ("demo-log-and-save-same", "demo --video sample --headless --log {W}/o.csv "
     "--save {W}/o.csv", 2, ["--save", ".mp4"]),
    ("demo-log-bad-ext", "demo --video sample --headless --log {W}/faces.txt", 2,
     [".csv or .jsonl"]),
    ("demo-save-bad-ext", "demo --video sample --headless --save {W}/out.mkv", 2,
     [".mp4 or .avi"]),
    ("bench-out-is-file", "benchmark {W}/model.tflite --out {W}/afile", 2,
     ["--out", "is a file"]),
    ("bench-out-parent-file", "benchmark {W}/model.tflite --out {W}/afile/res", 2,
     ["afile is a file"]),
    ("bench-out-unwritable", "benchmark {W}/model.tflite --out /proc/nope", 2,
     ["cannot write"]),
    ("eval-out-is-file", "evaluate {W}/model.tflite --data {W}/syn.npz --out {W}/afile", 2,
     ["--out", "is a file"]),
    ("convert-out-is-file", "convert {W}/run --out {W}/afile", 2, ["--out", "is a file"]),
    ("convert-builds-exist", "convert {W}/run", 2, ["exists", "--force"]),
    # --- silent wrong results: values out of range ------------------------------------------
    ("train-negative-lr", "train --data synthetic --finetune-lr -1", 2,
     ["--finetune-lr -1.0", "out of range", "> 0"]),
    ("train-head-lr-nan", "train --data synthetic --head-lr nan", 2, ["--head-lr nan"]),
    ("train-val-fraction-150", "train --data synthetic --val-fraction 1.5", 2,
     ["--val-fraction 1.5", "< 1"]),
    ("train-val-fraction-neg", "train --data synthetic --val-fraction -0.2", 2,
     ["--val-fraction -0.2", "> 0"]),
    ("train-limit-neg", "train --data synthetic --limit -5", 2, ["--limit -5", ">= 0"]),
    ("train-batch-0", "train --data synthetic --batch-size 0", 2, ["--batch-size 0", ">= 1"]),
    ("train-epochs-neg", "train --data synthetic --finetune-epochs -1", 2,
     ["--finetune-epochs -1"]),
    ("train-dropout-1", "train --data synthetic --dropout 1", 2, ["--dropout 1.0", "< 1"]),
    ("train-smoothing-neg", "train --data synthetic --label-smoothing -0.1", 2,
     ["--label-smoothing"]),
    ("train-threads-huge", "train --data synthetic --threads 100000", 2,
     ["--threads 100000", "<= 256"]),
    ("train-threads-neg", "train --data synthetic --threads -1", 2, ["--threads -1"]),
    ("train-seed-neg", "train --data synthetic --seed -1", 2, ["--seed -1"]),
    ("train-unfreeze-neg2", "train --data synthetic --unfreeze-blocks -2", 2,
     ["--unfreeze-blocks -2", ">= -1"]),
    ("train-rotation-400", "train --data synthetic --rotation-deg 400", 2, ["--rotation-deg"]),
    ("train-beta-1", "train --data synthetic --effective-beta 1", 2, ["--effective-beta"]),
    ("train-name-escapes", "train --data synthetic --runs-dir {W}/runs --name ../../x", 2,
     ["--name '../../x'", "plain folder name", "--runs-dir"]),
    ("train-name-abs", "train --data synthetic --runs-dir {W}/runs --name /tmp/x", 2,
     ["plain folder name"]),
    ("train-name-dotdot-resume", "train --resume --runs-dir {W}/runs --name ..", 2,
     ["plain folder name"]),
    ("resume-input-size", "train --resume --runs-dir {W}/runs --name r1 --input-size 96", 2,
     ["cannot change what the run is", "--input-size 96", "the run has 32", "another --name"]),
    ("resume-data", "train --resume --runs-dir {W}/runs --name r1 --data {W}/syn.csv", 2,
     ["cannot change", "--data"]),
    ("resume-arch", "train --resume --runs-dir {W}/runs --name r1 --arch inception_v3", 2,
     ["cannot change", "--arch"]),
    ("resume-tta", "train --resume --runs-dir {W}/runs --name r1 --no-tta-flip", 2,
     ["--tta-flip False"]),
    ("resume-size-in-recipe", "train --resume --runs-dir {W}/runs --name r1 "
     "--config {W}/resume_size.toml", 2, ["resume_size.toml: input_size = 96", "cannot change"]),
    ("resume-no-run", "train --resume --runs-dir {W}/nothing", 2, ["no run to resume"]),
    ("resume-empty-run", "train --resume --runs-dir {W} --name emptyrun", 2,
     ["no run to resume there"]),
    ("eval-limit-neg", "evaluate {W}/model.tflite --data {W}/syn.npz --limit -3", 2,
     ["--limit", "-3 is out of range", ">= 0"]),
    ("eval-threads-0", "evaluate {W}/model.tflite --data {W}/syn.npz --threads 0", 2,
     ["--threads", ">= 1"]),
    ("eval-threads-huge", "evaluate {W}/model.tflite --data {W}/syn.npz --threads 100000", 2,
     ["--threads", "<= 256"]),
    ("eval-agreement-1.5", "evaluate {W}/model.tflite --data {W}/syn.npz --min-agreement 1.5",
     2, ["--min-agreement", "<= 1"]),
    ("eval-class-p-0", "evaluate {W}/model.tflite --data {W}/syn.npz --max-class-p 0", 2,
     ["--max-class-p", "> 0"]),
    ("eval-latency-0", "evaluate {W}/model.tflite --data {W}/syn.npz --latency-runs 0", 2,
     ["--latency-runs"]),
    ("eval-limit-text", "evaluate {W}/model.tflite --data {W}/syn.npz --limit ten", 2,
     ["'ten' is not a whole number"]),
    ("convert-opset-5", "convert {W}/run --opset 5", 2, ["--opset 5", ">= 13", "<= 18"]),
    ("convert-drop-neg", "convert {W}/run --max-drop-pp -1", 2, ["--max-drop-pp"]),
    ("convert-class-p-0", "convert {W}/run --max-class-p 0", 2, ["--max-class-p"]),
    ("convert-agreement-2", "convert {W}/run --min-agreement 2", 2, ["--min-agreement"]),
    ("convert-qat-lr-0", "convert {W}/run --qat-lr 0", 2, ["--qat-lr"]),
    ("convert-calib-select", "convert {W}/run --int8 --calib-select 4,x", 2, ["--calib-select"]),
    ("convert-calib-faces-0", "convert {W}/run --calib-faces 0", 2, ["--calib-faces"]),
    ("convert-latency-0", "convert {W}/run --latency-runs 0", 2, ["--latency-runs"]),
    ("convert-no-source", "convert", 2, ["pass the run folder"]),
    ("convert-missing", "convert {W}/nowhere", 2, ["no such run folder"]),
    ("convert-not-a-run", "convert {W}/emptyrun", 2, ["no model_float.h5"]),
    ("convert-all-off", "convert {W}/run --no-tflite-fp32 --no-onnx-fp32", 2,
     ["nothing to do"]),
    # --- the spec bound to the weights ------------------------------------------------------
    ("demo-swapped-labels", "demo --video sample --headless --model {W}/swapped.tflite", 2,
     ["swapped.tflite", "does not belong to these weights", "re-export"]),
    ("eval-swapped-labels", "evaluate {W}/swapped.tflite --data {W}/syn.npz", 2,
     ["does not belong"]),
    ("bench-swapped-labels", "benchmark {W}/swapped.tflite --out {W}/res", 2,
     ["does not belong"]),
    ("demo-spec-other-weights", "demo --video sample --headless --model {W}/bare.tflite", 2,
     ["does not belong"]),
    ("demo-spec-nonnumeric", "demo --video sample --headless --model {W}/nonnumeric.tflite", 2,
     ["spec field input_size = 'abc'", "re-export"]),
    ("demo-spec-null-scale", "demo --video sample --headless --model {W}/noscale.tflite", 2,
     ["spec field norm_scale"]),
    ("demo-no-spec", "demo --video sample --headless --model {W}/nospec.tflite", 2,
     ["no fer-edge model spec", "fer-edge convert"]),
    # --- tracebacks that are now one line: data ---------------------------------------------
    ("data-utf16", "evaluate {W}/model.tflite --data {W}/utf16.csv", 2,
     ["utf16.csv", "UTF-16", "UTF-8"]),
    ("data-latin1", "evaluate {W}/model.tflite --data {W}/latin1.csv", 2,
     ["latin1.csv", "not UTF-8"]),
    ("data-binary-csv", "evaluate {W}/model.tflite --data {W}/binary.csv", 2, ["binary.csv"]),
    ("data-empty-npz", "evaluate {W}/model.tflite --data {W}/empty.npz", 2,
     ["empty.npz", "not a readable .npz", "images"]),
    ("data-npz-no-arrays", "evaluate {W}/model.tflite --data {W}/noarrays.npz", 2,
     ["missing array"]),
    ("data-npz-bad-usage", "evaluate {W}/model.tflite --data {W}/badusage.npz", 2,
     ["usage code is outside 0..2"]),
    ("data-missing", "evaluate {W}/model.tflite --data {W}/nope.csv", 2, ["no such file"]),
    ("data-unknown-format", "evaluate {W}/model.tflite --data {W}/notes.txt", 2,
     ["unknown dataset format"]),
    ("data-folder-no-classes", "evaluate {W}/model.tflite --data {W}/emptyrun", 2,
     ["no <class>/ sub-folders"]),
    ("train-data-missing", "train --data {W}/missing.csv --weights none --runs-dir {W}/runs", 2,
     ["no such file"]),
    # --- tracebacks that are now one line: recipes ------------------------------------------
    ("toml-string-for-int", "train --config {W}/bad_type.toml --data synthetic", 2,
     ["bad_type.toml", "batch_size = 'sixteen'", "whole number"]),
    ("toml-list-for-int", "train --config {W}/list.toml --data synthetic", 2,
     ["batch_size = [16]"]),
    ("toml-misspelt-section", "train --config {W}/typo_section.toml --data synthetic", 2,
     ["unknown section [trian]", "did you mean [train]"]),
    ("toml-misspelt-key", "train --config {W}/typo_key.toml --data synthetic", 2,
     ["unknown key(s) batchsize", "batch_size"]),
    ("toml-demo-ema-text", "demo --config {W}/demo_ema.toml --video sample --headless", 2,
     ["ema = 'high'", "must be a number"]),
    ("toml-bad-choice", "train --config {W}/bad_choice.toml --data synthetic", 2,
     ["'hinge'", "use ce, focal"]),
    ("toml-negative-lr", "train --config {W}/neg_lr.toml --data synthetic", 2,
     ["neg_lr.toml: finetune_lr = -0.1", "out of range"]),
    ("toml-bool-text", "train --config {W}/bool_type.toml --data synthetic", 2,
     ["augment = 'yes'", "true or false"]),
    ("toml-invalid", "train --config {W}/invalid.toml --data synthetic", 2, ["not valid TOML"]),
    ("toml-missing", "train --config {W}/nope.toml --data synthetic", 2,
     ["config file not found"]),
    ("toml-other-stage", "train --config {W}/other_stage.toml --data synthetic", 2,
     ["no [train] section", "[convert]"]),
    ("toml-flat-and-table", "train --config {W}/flat_and_table.toml --data synthetic", 2,
     ["outside any section"]),
    ("toml-utf16", "train --config {W}/utf16.toml --data synthetic", 2, ["not UTF-8"]),
    # --- tracebacks that are now one line: threads, runs ------------------------------------
    ("bench-threads-abc", "benchmark {W}/model.tflite --threads 0,abc --out {W}/res", 2,
     ["--threads '0,abc'", "1..256"]),
    ("bench-threads-huge", "benchmark {W}/model.tflite --threads 100000 --out {W}/res", 2,
     ["1..256"]),
    ("bench-threads-neg", "benchmark {W}/model.tflite --threads -1 --out {W}/res", 2,
     ["--threads"]),
    ("bench-runs-0", "benchmark {W}/model.tflite --runs 0 --out {W}/res", 2,
     ["--runs", ">= 1"]),
    ("bench-limit-neg", "benchmark {W}/model.tflite --limit -1 --out {W}/res", 2, ["--limit"]),
    ("bench-missing-video", "benchmark {W}/model.tflite --video {W}/nope.mp4 --out {W}/res", 2,
     ["--video", "video file not found"]),
    ("demo-threads-huge", "demo --video sample --headless --threads 100000", 2,
     ["--threads 100000"]),
    ("demo-threads-neg", "demo --video sample --headless --threads -1", 2, ["--threads -1"]),
    # --- demo flags -------------------------------------------------------------------------
    ("demo-detect-width-neg", "demo --video sample --headless --detect-width -10", 2,
     ["--detect-width -10", ">= 0"]),
    ("demo-hysteresis-neg", "demo --video sample --headless --hysteresis -5", 2,
     ["--hysteresis -5.0", ">= 0"]),
    ("demo-hysteresis-1", "demo --video sample --headless --hysteresis 1", 2, ["--hysteresis"]),
    ("demo-max-frames-neg", "demo --video sample --headless --max-frames -1", 2,
     ["--max-frames -1"]),
    ("demo-frame-size-banana", "demo --camera 0 --headless --frame-size banana", 2,
     ["--frame-size 'banana'", "640x480"]),
    ("demo-frame-size-zero", "demo --video sample --headless --frame-size 0x480", 2,
     ["--frame-size"]),
    ("demo-ema-0", "demo --video sample --headless --ema 0", 2, ["--ema 0.0", "> 0"]),
    ("demo-ema-2", "demo --video sample --headless --ema 2", 2, ["--ema 2.0", "<= 1"]),
    ("demo-detect-every-0", "demo --video sample --headless --detect-every 0", 2,
     ["--detect-every 0"]),
    ("demo-classify-every-0", "demo --video sample --headless --classify-every 0", 2,
     ["--classify-every"]),
    ("demo-max-faces-0", "demo --video sample --headless --max-faces 0", 2, ["--max-faces"]),
    ("demo-camera-neg", "demo --camera -5 --headless", 2, ["--camera -5"]),
    # --- cases that were handled before (kept so they stay handled) -------------------------
    ("demo-two-sources", "demo --video sample --camera 0 --headless", 2, ["choose one source"]),
    ("demo-no-source", "demo --headless", 2, ["choose one source"]),
    ("demo-missing-video", "demo --video {W}/nope.mp4 --headless", 2, ["video file not found"]),
    ("demo-unreadable-video", "demo --video {W}/existing.mp4 --headless", 2,
     ["cannot read this video"]),
    ("demo-missing-image", "demo --image {W}/nope.png --headless", 2, ["no image found"]),
    ("demo-camera-97", "demo --camera 97 --headless", 2, ["camera 97 cannot be opened"]),
    ("demo-missing-model", "demo --video sample --headless --model {W}/nope.tflite", 2,
     ["model file not found"]),
    ("demo-unknown-model-type", "demo --video sample --headless --model {W}/model.pb", 2,
     ["unknown model type"]),
    ("demo-truncated-model", "demo --video sample --headless --model {W}/truncated.tflite", 2,
     ["truncated.tflite"]),
    ("demo-foreign-onnx", "demo --video sample --headless --model {W}/foreign.onnx", 2,
     ["not a loadable ONNX model"]),
    ("demo-unknown-detector", "demo --video sample --headless --detector bogus", 2,
     ["bogus"]),
    ("demo-missing-yunet", "demo --video sample --headless --detector {W}/nope.onnx", 2,
     ["nope.onnx"]),
    ("demo-unknown-flag", "demo --video sample --headless --speed 3", 2,
     ["unrecognized arguments: --speed 3"]),
    ("demo-int-text", "demo --video sample --headless --max-frames lots", 2,
     ["invalid int value: 'lots'"]),
    ("train-no-data", "train --weights none", 2, ["no data", "--data"]),
    ("train-size-below-min", "train --data synthetic --input-size 40", 2,
     ["--input-size 40", "minimum of 75"]),
    ("train-bad-arch", "train --data synthetic --arch resnet", 2, ["invalid choice: 'resnet'"]),
    ("train-run-exists", "train --data synthetic --runs-dir {W}/runs --name r1", 2,
     ["run folder exists", "--resume"]),
    ("train-run-is-file", "train --data synthetic --runs-dir {W} --name afile", 2,
     ["is a file"]),
    ("train-runs-dir-file", "train --data synthetic --runs-dir {W}/afile --name x --weights "
     "none", 2, ["afile is a file"]),
    ("eval-missing-build", "evaluate {W}/nope.tflite --data {W}/syn.npz", 2,
     ["model file not found"]),
    ("eval-no-data", "evaluate {W}/model.tflite", 2, ["--data"]),
    ("eval-bad-split", "evaluate {W}/model.tflite --data {W}/syn.npz --split dev", 2,
     ["invalid choice: 'dev'"]),
    ("eval-foreign-reference", "evaluate {W}/model.tflite --data {W}/syn.npz --reference "
     "{W}/foreign.onnx", 2, ["foreign.onnx"]),
    ("bench-missing-build", "benchmark {W}/nope.tflite --out {W}/res", 2, ["no such build"]),
    ("bench-no-builds-in-folder", "benchmark {W}/emptyrun --out {W}/res", 2,
     ["no .tflite/.onnx builds"]),
    ("no-command", "", 2, None),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_and_changes_nothing(case, ws, capsys):
    name, cmd, code, words = case
    if cmd.split()[:1] in (["train"], ["convert"]) and not HAS_TF:
        pytest.skip("train/convert need the train extra (on the light install they say so: "
                    "test_light_install_train_convert_and_evaluate)")
    before = snapshot(ws)
    try:
        rc, err, _ = run_cli(shlex.split(cmd.format(W=ws)), capsys)
    except SystemExit as exc:  # argparse
        rc, err = exc.code, capsys.readouterr().err.strip().splitlines()
    assert rc == code, err
    assert not any("Traceback" in ln for ln in err), err
    if words is not None:
        ours = [ln for ln in err if ln.startswith("fer-edge")]
        assert len(ours) == 1 and ours[0] == err[-1], err
        line = ours[0]
        assert ": error: " in line, line
        for w in words:
            assert w in line, f"{w!r} not in {line!r}"
    assert snapshot(ws) == before, "a file of the workspace was created, changed or removed"


def test_sweep_size():
    """The sweep keeps its breadth: every command and the API, bad and good cases."""
    cmds = {c[1].split()[0] for c in BAD if c[1]}
    assert cmds == {"demo", "train", "convert", "evaluate", "benchmark"}
    assert len(BAD) + len(API_BAD) + len(API_GOOD) >= 150


# --- outputs: --force, reports, unique benchmark files, permissions ----------------------------

@needs_default
def test_demo_force_replaces_log_and_evaluate_report_needs_force(ws, tmp_path, capsys):
    log = tmp_path / "faces.csv"
    log.write_text("old\n")
    args = ["demo", "--video", "sample", "--headless", "--max-frames", "5", "--model",
            str(ws / "model.tflite"), "--log", str(log)]
    assert run_cli(args, capsys)[0] == 2 and log.read_text() == "old\n"
    assert run_cli([*args, "--force"], capsys)[0] == 0
    assert log.read_text().startswith("frame,timestamp")
    out = tmp_path / "rep"
    ev = ["evaluate", str(ws / "model.tflite"), "--data", str(ws / "syn.npz"), "--limit", "14",
          "--latency-runs", "2", "--out", str(out)]
    assert run_cli(ev, capsys)[0] == 0 and (out / "report.md").is_file()
    first = (out / "report.json").read_text()
    rc, err, _ = run_cli(ev, capsys)
    assert rc == 2 and "holds a report" in err[-1] and "--force" in err[-1]
    assert (out / "report.json").read_text() == first
    assert run_cli([*ev, "--force"], capsys)[0] == 0


def test_csv_without_usage_column_carves_val_and_test(ws):
    from fer_edge.data import load_dataset

    ds = load_dataset(ws / "nousage.csv")
    assert all(len(ds.labels[s]) for s in ("train", "val", "test"))
    assert sum(len(v) for v in ds.labels.values()) == 49
    assert any("test (10%) carved" in n for n in ds.notes)
    assert any("val carved" in n for n in ds.notes)


def test_csv_with_utf8_bom_reads(tmp_path):
    from fer_edge.data import load_dataset

    p = write_csv(tmp_path / "a.csv", 14, 7, 7)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert len(load_dataset(p).labels["train"]) == 14


def test_atomic_files_get_the_usual_permissions(tmp_path):
    from fer_edge.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        os.umask(0o027)
        atomic_write_text(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o640


def test_no_clobber_write_and_unique_benchmark_names(tmp_path):
    from fer_edge.bench.cli import write_unique_csv
    from fer_edge.io import atomic_write_bytes

    p = tmp_path / "x.csv"
    p.write_text("first")
    with pytest.raises(FileExistsError):
        atomic_write_bytes(p, b"second", overwrite=False)
    assert p.read_text() == "first" and not list(tmp_path.glob(".*part"))
    a = write_unique_csv(tmp_path, "2026-01-01_host_abc", [{"a": 1}])
    b = write_unique_csv(tmp_path, "2026-01-01_host_abc", [{"a": 2}])
    assert a.name == "2026-01-01_host_abc.csv" and b.name == "2026-01-01_host_abc_2.csv"
    assert a.read_text() == "a\n1\n"


def test_disk_full_during_an_atomic_write_leaves_the_old_file(tmp_path, monkeypatch):
    import errno

    from fer_edge import io as fio

    p = tmp_path / "report.json"
    p.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fio.os, "fsync", full)
    with pytest.raises(OSError) as e:
        fio.atomic_write_text(p, "new")
    assert e.value.filename == str(p)  # the message names the file
    assert p.read_text() == "old" and [q.name for q in tmp_path.iterdir()] == ["report.json"]
    from fer_edge.cli import os_error_text

    msg = os_error_text(OSError(errno.ENOSPC, "No space left on device", str(p)))
    assert str(p) in msg and "free some disk space" in msg


# --- the spec bound to the weights -------------------------------------------------------------

@needs_default
def test_a_spec_without_binding_is_refused(tmp_path):
    flat = tflite_model_bytes(DEFAULT.read_bytes())
    spec = read_tflite_spec(DEFAULT.read_bytes(), "default").replace(sha256="")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(SPEC_ENTRY, spec.to_json())
    (tmp_path / "unbound.tflite").write_bytes(flat + buf.getvalue())
    with pytest.raises(SpecError, match="not bound to the weights.*fer-edge convert"):
        load_predictor(tmp_path / "unbound.tflite")


@needs_default
@pytest.mark.parametrize("edit, match", [
    (lambda d: d.pop("norm_scale"), "lacks field.*norm_scale"),
    (lambda d: d["crop"].pop("scale"), "crop lacks field.*scale"),
    (lambda d: d.update(colour="rgb"), "unknown field.*colour"),
    (lambda d: d.update(schema="fer-edge/spec/1"), "spec/1.*re-export"),
    (lambda d: d["embedding"].update(size=7), "embedding"),
], ids=["missing-field", "missing-crop-field", "unknown-field", "old-schema", "emb-size"])
def test_the_spec_is_strict(tmp_path, edit, match):
    """Every field required, unknown fields refused, no defaults filled in on reading."""
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(_rezip(DEFAULT.read_bytes(), edit))
    with pytest.raises(SpecError, match=match):
        load_predictor(bad)


@needs_default
def test_the_packaged_spec_alone_decides_the_crop(monkeypatch):
    """The runtime reads no calibration file: the crop rule of every detector, the default
    one (blazeface-full+refine) included, comes from the model's own spec."""
    import fer_edge.detect.crops as crops

    monkeypatch.setattr(crops, "CALIBRATION_FILE", Path("/nonexistent/face_crops.json"))
    monkeypatch.setattr(crops, "_calibration", lambda: {})
    p = load_predictor(DEFAULT)
    assert p.spec.detector == crops.AUTO
    for name in ("blazeface-full+refine", "blazeface-full", "blazeface-short", "haar"):
        assert p.spec.crop_for(name) is not None


def test_onnx_binding_covers_weights_and_spec(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(3, 7)).astype(
        np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=-1)], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 75, 75, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 7])], [w])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    spec = embed_in_onnx(proto, make_spec())
    good = tmp_path / "tiny.onnx"
    good.write_bytes(proto.SerializeToString())
    pred = load_predictor(good)
    assert pred.spec.sha256 == spec.sha256
    assert pred.predict(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
    # labels swapped inside the embedded spec, binding kept: refused
    d = json.loads(spec.to_json())
    d["labels"][3], d["labels"][4] = d["labels"][4], d["labels"][3]
    for p in proto.metadata_props:
        if p.key == "fer_edge_spec":
            p.value = json.dumps(d)
    (tmp_path / "swapped.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(SpecError, match="does not belong"):
        load_predictor(tmp_path / "swapped.onnx")
    # other weights under the right spec: refused
    embed_in_onnx(proto, make_spec())
    proto.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((3, 7), np.float32),
                                                                 "w"))
    for p in proto.metadata_props:
        if p.key == "fer_edge_spec":
            p.value = spec.to_json()
    (tmp_path / "reweighted.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(SpecError, match="does not belong"):
        load_predictor(tmp_path / "reweighted.onnx")
    assert onnx.load(str(good)).graph.node  # still a valid ONNX file


# --- the Python API ----------------------------------------------------------------------------

API_BAD = [
    ("one-face-2d", lambda: np.zeros((48, 48), np.uint8), "face[None]"),
    ("rows-only", lambda: np.zeros((5, 48), np.uint8), "(N, h, w)"),
    ("floats-0-1", lambda: np.random.default_rng(0).random((2, 48, 48)), "0..1"),
    ("float32-0-1", lambda: np.full((1, 48, 48), 0.5, np.float32), "0..255"),
    ("nan", lambda: np.full((1, 48, 48), np.nan), "NaN"),
    ("inf", lambda: np.full((1, 48, 48), np.inf, np.float32), "NaN or infinite"),
    ("negative", lambda: np.full((1, 48, 48), -3.0), "0..255"),
    ("above-255", lambda: np.full((1, 48, 48), 300, np.int32), "0..255"),
    ("bool", lambda: np.ones((1, 48, 48), bool), "dtype bool"),
    ("strings", lambda: np.array([["a"]]), "dtype"),
    ("path", lambda: "face.png", "cv2.imread"),
    ("none", lambda: None, "grey faces"),
    ("colour-crops", lambda: np.zeros((2, 48, 48, 3), np.uint8), "grey"),
    ("5d", lambda: np.zeros((1, 1, 48, 48, 1), np.uint8), "(N, h, w)"),
    ("tiny-faces", lambda: np.zeros((2, 1, 1), np.uint8), "2x2"),
]
API_FRAMES_BAD = [
    ("none", None, "frame is None"),
    ("path", "group.jpg", "cv2.imread(path)"),
    ("empty", np.zeros((0, 0, 3), np.uint8), "empty"),
    ("float", np.zeros((20, 20, 3), np.float32), "uint8"),
    ("two-channels", np.zeros((20, 20, 2), np.uint8), "(H, W, 3)"),
    ("1d", np.zeros(10, np.uint8), "(H, W, 3)"),
]
API_GOOD = [
    ("uint8-batch", lambda: np.full((3, 48, 48), 128, np.uint8), (3, 7)),
    ("float-0-255", lambda: np.full((2, 48, 48), 128.0), (2, 7)),
    ("int64-0-255", lambda: np.full((1, 60, 50), 90, np.int64), (1, 7)),
    ("list-of-faces", lambda: [np.zeros((48, 48), np.uint8)] * 2, (2, 7)),
    ("channel-last-1", lambda: np.zeros((2, 48, 48, 1), np.uint8), (2, 7)),
    ("black-float", lambda: np.zeros((1, 48, 48), np.float32), (1, 7)),
    ("empty-batch", lambda: np.zeros((0, 48, 48), np.uint8), (0, 7)),
    ("large-faces", lambda: np.full((1, 200, 160), 40, np.uint8), (1, 7)),
]


@pytest.fixture(scope="module")
def model(ws):
    return load_predictor(ws / "model.tflite", num_threads=1)


@pytest.mark.parametrize("case", API_BAD, ids=[c[0] for c in API_BAD])
def test_predict_refuses_bad_faces(case, model):
    _, make, needle = case
    with pytest.raises(InputError, match=None) as e:
        model.predict(make())
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, FerEdgeError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("case", API_GOOD, ids=[c[0] for c in API_GOOD])
def test_predict_accepts_good_faces(case, model):
    _, make, shape = case
    p = model.predict(make())
    assert p.shape == shape and p.dtype == np.float32
    assert np.allclose(p.sum(1), 1, atol=0.05)


def test_float_faces_in_0_255_match_uint8(model):
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48)).astype(np.uint8)
    np.testing.assert_allclose(model.predict(faces), model.predict(faces.astype(np.float64)))


@pytest.mark.parametrize("case", API_FRAMES_BAD, ids=[c[0] for c in API_FRAMES_BAD])
def test_analyze_refuses_bad_frames(case, model):
    _, frame, needle = case
    with pytest.raises(InputError) as e:
        model.analyze(frame)
    assert needle in str(e.value)


def test_analyze_and_predict_inputs_edges(model):
    assert model.analyze(np.zeros((120, 160, 3), np.uint8)) == []
    assert model.analyze(np.zeros((120, 160), np.uint8)) == []
    with pytest.raises(InputError, match="NaN"):
        model.predict_inputs(np.full((1, 75, 75, 3), np.nan, np.float32))
    with pytest.raises(InputError, match="does not match"):
        model.predict_inputs(np.zeros((1, 32, 32, 3), np.float32))


@pytest.mark.parametrize("path", [123, ["a.tflite"], b"\x00"])
def test_load_refuses_a_path_that_is_not_one(path):
    with pytest.raises(InputError, match="pass a .tflite/.onnx file path"):
        load_predictor(path)


@pytest.mark.parametrize("threads", [-1, 100000, 2.5, True, "2"])
def test_load_refuses_bad_thread_counts(threads, ws):
    with pytest.raises(ConfigError, match="1..256"):
        load_predictor(ws / "model.tflite", num_threads=threads)


# --- one definition of the defaults; recipes; docs; CI ----------------------------------------

def test_gate_defaults_have_one_definition():
    from fer_edge.cli import build_parser
    from fer_edge.config import config_from_args
    from fer_edge.convert.config import ConvertConfig
    from fer_edge.evaluate_config import EvaluateConfig
    from fer_edge.gate import Gate

    g, c = Gate(), ConvertConfig()
    assert c.gate() == g
    args = build_parser().parse_args(["evaluate", "x.tflite", "--data", "d"])
    assert config_from_args(EvaluateConfig, args).gate() == g


RECIPES = sorted(p for d in ("train", "convert", "demo") for p in (ROOT / d).glob("*.toml"))


@pytest.mark.parametrize("path", RECIPES, ids=[f"{p.parent.name}/{p.name}" for p in RECIPES])
def test_every_recipe_loads(path):
    import tomllib

    from fer_edge.convert.config import ConvertConfig
    from fer_edge.demo.config import DemoConfig

    classes = {"train": TrainConfig, "convert": ConvertConfig, "demo": DemoConfig}
    sections = [k for k, v in tomllib.loads(path.read_text()).items() if isinstance(v, dict)]
    assert sections and set(sections) <= set(classes), sections
    for s in sections:
        cfg = make_config(classes[s], read_toml(path, classes[s]))
        if s == "convert":
            cfg.calib_batch_sizes()
        if s == "train" and cfg.data:
            cfg.validate()


def test_recipes_exist():
    assert {p.name for p in RECIPES} >= {"smoke.toml", "cpu.toml", "gpu.toml"}


def test_project_files_never_point_to_the_teams_notes():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if files.returncode != 0:
        pytest.skip("not a git checkout")
    needle = "shared/" + "notes"
    hits = [f for f in files.stdout.split() if (ROOT / f).is_file()
            and (ROOT / f).suffix in (".py", ".md", ".toml", ".txt", ".cfg", "")
            and needle in (ROOT / f).read_text(errors="ignore")]
    assert hits == [], hits


def test_ci_runs_the_smoke_recipe():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "train --config train/smoke.toml" in ci


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


# --- TensorFlow cases ---------------------------------------------------------------------------

@pytest.mark.tf
def test_convert_checks_spec_against_the_model_before_writing(tiny_exported, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    for f in ("model_float.h5", "config.json"):
        shutil.copy(tiny_exported / f, run / f)
    make_spec(input_size=75, arch="tiny_cnn").write(run / "spec.json")
    rc, err, _ = run_cli(["convert", str(run), "--data", "synthetic"], capsys)
    assert rc == 2 and "Traceback" not in "".join(err)
    assert "says input 75x75x3" in err[-1] and "takes 32x32x3" in err[-1]
    assert not (run / "export").exists()


@pytest.mark.tf
def test_train_failing_at_start_up_frees_the_name(tmp_path, capsys):
    from conftest import TINY_TRAIN_ARGS

    args = ["train", "--data", "synthetic", "--weights", str(tmp_path / "missing.h5"),
            "--runs-dir", str(tmp_path / "runs"), "--name", "x", *TINY_TRAIN_ARGS]
    rc, err, _ = run_cli(args, capsys)
    assert rc == 2 and "missing.h5" in err[-1] and "weights file not found" in err[-1]
    assert not (tmp_path / "runs" / "x").exists()


@pytest.mark.tf
def test_resume_refuses_a_new_input_size_of_a_real_run(tiny_exported, tmp_path, capsys):
    import shutil

    run = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_exported, run, ignore=shutil.ignore_patterns("export"))
    before = snapshot(run)
    rc, err, _ = run_cli(["train", "--resume", "--runs-dir", str(tmp_path / "runs"), "--name",
                          "tiny", "--input-size", "48"], capsys)
    assert rc == 2 and "--input-size 48" in err[-1] and "the run has 32" in err[-1]
    assert snapshot(run) == before
