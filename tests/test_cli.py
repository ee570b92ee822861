"""The CLI's bad-input contract across every command (the hardening sweep's table, issues 12
and 34; see cli_sweep.py), and --force on outputs that exist. Light tier: no TensorFlow (train
and convert cases skip without it)."""

from __future__ import annotations

import shlex

import pytest
from cli_sweep import needs_default, run_cli, snapshot
from conftest import HAS_TF
from test_runtime import API_BAD, API_GOOD

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
    ("enroll-out-ends-with-slash", "enroll --images {W}/photos --out {W}/newdir/", 2,
     ["newdir/", "names a folder", "give a file name"]),
    ("enroll-out-ends-with-dot", "enroll --images {W}/photos --out {W}/newdir/.", 2,
     ["newdir/.", "names a folder", "give a file name"]),
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
    assert cmds == {"demo", "train", "convert", "evaluate", "benchmark", "enroll"}
    assert len(BAD) + len(API_BAD) + len(API_GOOD) >= 150


# --- outputs: --force, reports -----------------------------------------------------------------

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
