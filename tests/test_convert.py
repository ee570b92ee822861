"""train tiny -> convert --int8 -> four builds -> parity gate; broken builds; overwrite; spec."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_spec

from fer_edge.cli import main
from fer_edge.errors import ModelFileError, SpecError
from fer_edge.runtime import load_predictor
from fer_edge.runtime.spec_io import embed_in_tflite, sidecar_path
from fer_edge.spec import ModelSpec

pytestmark = pytest.mark.tf
BUILDS = ("fer_tiny_cnn_32_fp32.tflite", "fer_tiny_cnn_32_int8.tflite",
          "fer_tiny_cnn_32_fp32.onnx", "fer_tiny_cnn_32_int8.onnx")


@pytest.fixture
def exported(tiny_exported):
    return tiny_exported


def test_four_builds_pass_the_gate(exported):
    out = exported / "export"
    for b in BUILDS:
        assert (out / b).is_file() and sidecar_path(out / b).is_file()
    rep = json.loads((out / "report.json").read_text())
    parity = rep["parity"]
    assert set(parity["builds"]) == set(BUILDS)
    assert parity["reference"]["accuracy"] > 0.9
    for name, e in parity["builds"].items():
        assert e["failures"] == [], name
        assert e["agreement"] >= 0.95, name
        assert len(e["per_class_delta"]) == 7
        assert rep["builds"][name]["latency_ms"]["1"]["median"] > 0
    for f in ("report.md", "per_class.png"):
        assert (out / f).is_file()
    md = (out / "report.md").read_text()
    assert "disgust" in md and "All builds pass." in md


def test_int8_builds_are_integer(exported):
    tfl = load_predictor(exported / "export" / BUILDS[1])
    assert tfl.input_dtype == np.int8 and tfl.spec.input_dtype == "int8"
    import onnx

    m = onnx.load(str(exported / "export" / BUILDS[3]))
    assert any(n.op_type == "QuantizeLinear" for n in m.graph.node)
    weights = [t for t in m.graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_int8_onnx_rounds_like_the_int8_tflite(exported):
    """The int8 ONNX is built from the int8 TFLite: same grid, so (near) the same outputs."""
    faces = np.random.default_rng(1).integers(0, 255, (64, 48, 48), dtype=np.uint8)
    tfl = load_predictor(exported / "export" / BUILDS[1]).predict(faces, tta_flip=False)
    onx = load_predictor(exported / "export" / BUILDS[3]).predict(faces, tta_flip=False)
    # the TFLite output is int8 (steps of 1/256); the ONNX keeps the softmax in float. On an
    # AVX2-only EPYC, before the runtime turned on onnxruntime's exact u8 x u8 kernels there,
    # saturated u8 x s8 products moved these outputs by up to 0.10 (now 0.002)
    assert np.abs(tfl - onx).max() < 0.03
    assert np.mean(tfl.argmax(1) == onx.argmax(1)) >= 0.95


def test_onnx_exact_int8_kernels_where_u8s8_can_saturate():
    from fer_edge.runtime.onnx import saturating_cpu

    assert saturating_cpu("x86_64", "flags : fpu sse2 avx2 fma")
    assert not saturating_cpu("x86_64", "flags : fpu avx2 avx512f avx512_vnni")
    assert not saturating_cpu("x86_64", "flags : fpu avx2 avx_vnni")
    assert saturating_cpu("AMD64", None)  # unreadable flags: play safe
    assert not saturating_cpu("aarch64", "Features : fp asimd")


def test_onnxruntime_calibrated_int8_onnx(exported, tmp_path):
    out = tmp_path / "ort"
    assert main(["convert", str(exported), "--int8", "--no-tflite-fp32", "--no-tflite-int8",
                 "--no-onnx-fp32", "--onnx-int8-from", "ort-s8s8", "--out", str(out),
                 "--latency-runs", "3"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["parity"]["builds"]) == {BUILDS[3]}


def test_light_predictor_api(exported):
    p = load_predictor(exported / "export" / BUILDS[1], num_threads=1)
    faces = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    probs = p.predict(faces)
    assert probs.shape == (3, 7) and np.allclose(probs.sum(1), 1, atol=0.03)
    frame = np.zeros((240, 320, 3), np.uint8)
    assert p.analyze(frame, detector=_FixedBoxes([(100, 60, 80, 80)]))[0]["box"] == (
        100, 60, 80, 80)


class _FixedBoxes:
    def __init__(self, boxes):
        self.boxes = boxes

    def detect(self, frame):
        return self.boxes


def test_overwrite_refused_without_force(exported, capsys):
    assert main(["convert", str(exported), "--no-tflite-int8", "--no-onnx-int8"]) == 2
    assert "--force" in capsys.readouterr().err


def test_broken_input_scale_fails_the_gate(exported, tmp_path):
    """An int8 build whose input quantisation does not match the preprocessing is caught.

    The build is the good int8 TFLite with a spec saying pixels map to [0, 1] (x / 255, the
    classic slip) while its int8 input was calibrated for [-1, 1]: it converts, loads and runs,
    and its answers are wrong. (Patching the input scale inside the flatbuffer is no test: the
    runtime reads that scale to quantise the input, so input and model stay consistent.)
    """
    import dataclasses

    src = exported / "export" / BUILDS[1]
    flat = src.read_bytes()
    flat = flat[:flat.find(b"PK\x03\x04")]  # the flatbuffer without the embedded spec
    spec = ModelSpec.read(sidecar_path(src))
    wrong = dataclasses.replace(spec, norm_scale=1.0 / 255.0, norm_offset=0.0)
    bad = tmp_path / "bad_int8.tflite"
    bad.write_bytes(embed_in_tflite(flat, wrong))
    ref = exported / "export" / BUILDS[0]
    rc = main(["evaluate", str(bad), "--reference", str(ref), "--data", "synthetic",
               "--latency-runs", "2"])
    assert rc == 3


def test_truncated_and_foreign_files_are_one_line_errors(exported, tmp_path):
    src = exported / "export" / BUILDS[1]
    trunc = tmp_path / "t.tflite"
    trunc.write_bytes(src.read_bytes()[:2000])
    with pytest.raises((ModelFileError, SpecError)):
        load_predictor(trunc)
    foreign = tmp_path / "f.onnx"
    foreign.write_bytes(b"this is not a model at all")
    with pytest.raises(ModelFileError):
        load_predictor(foreign)
    r = subprocess.run([sys.executable, "-m", "fer_edge", "evaluate", str(trunc), "--data",
                        "synthetic"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if "error" in ln][0].startswith(
        "fer-edge evaluate: error:")


def test_spec_missing_or_mismatched(exported, tmp_path):
    src = exported / "export" / BUILDS[2]  # onnx: spec embedded + sidecar
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    assert load_predictor(dst).spec.labels[1] == "disgust"  # embedded alone is enough
    ModelSpec.read(sidecar_path(src)).replace(labels=tuple("abcdefg")).write(sidecar_path(dst))
    with pytest.raises(SpecError, match="differ"):
        load_predictor(dst)
    make_spec(labels=("a", "b", "c")).write(sidecar_path(dst))
    with pytest.raises(SpecError):
        load_predictor(dst)
    # a tflite with no embedded spec and no sidecar
    flat = (exported / "export" / BUILDS[0]).read_bytes()
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(flat[:flat.find(b"PK\x03\x04")])
    with pytest.raises(SpecError, match="no fer-edge model spec"):
        load_predictor(bare)
    # wrong input size in the sidecar
    make_spec(input_size=48).write(sidecar_path(bare))
    with pytest.raises(SpecError, match="does not match"):
        load_predictor(bare)


@pytest.mark.tf
def test_package_default_writes_model_and_card(tiny_exported, tmp_path):
    script = Path(__file__).resolve().parents[1] / "convert" / "package_default.py"
    r = subprocess.run([sys.executable, str(script), str(tiny_exported), "--dest", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-500:]
    card = json.loads((tmp_path / "fer_default_int8.card.json").read_text())
    model = tmp_path / "fer_default_int8.tflite"
    assert card["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    report = json.loads((tiny_exported / "export" / "report.json").read_text())
    build = report["parity"]["builds"][card["source_build"]]
    assert card["evaluation"]["accuracy"] == build["report"]["accuracy"]
    assert card["trained_epochs"] >= 1 and card["source_build"].endswith("_int8.tflite")
    assert load_predictor(model).spec.labels == tuple(card["labels"])


@pytest.mark.tf
def test_package_default_refuses_missing_report(tmp_path):
    script = Path(__file__).resolve().parents[1] / "convert" / "package_default.py"
    r = subprocess.run([sys.executable, str(script), str(tmp_path), "--dest", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "report.json not found" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.tf
def test_package_default_refuses_a_build_that_failed_the_gate(tiny_exported, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_exported, run)
    rep_path = run / "export" / "report.json"
    report = json.loads(rep_path.read_text())
    name = next(b for b in report["parity"]["builds"] if b.endswith("_int8.tflite"))
    report["parity"]["builds"][name]["failures"] = ["fear recall -3.0 pp vs float"]
    rep_path.write_text(json.dumps(report))
    script = Path(__file__).resolve().parents[1] / "convert" / "package_default.py"
    r = subprocess.run([sys.executable, str(script), str(run), "--dest", str(tmp_path / "a")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "failed the parity gate" in r.stderr
    assert not (tmp_path / "a" / "fer_default_int8.tflite").exists()


def test_calib_select_keeps_the_batch_size_that_agrees_best(exported, tmp_path):
    out = tmp_path / "sel"
    assert main(["convert", str(exported), "--int8", "--no-tflite-fp32", "--no-onnx-fp32",
                 "--no-onnx-int8", "--calib-select", "2,8", "--qat-epochs", "0",
                 "--out", str(out), "--latency-runs", "3"]) == 0
    rep = json.loads((out / "report.json").read_text())
    cal = rep["builds"][BUILDS[1]]["calibration"]
    assert [t["batch_size"] for t in cal["tried"]] == [2, 8]
    best = max(cal["tried"], key=lambda t: t["val_agreement"])
    assert cal["batch_size"] == best["batch_size"] and 0 < best["val_agreement"] <= 1


def test_calib_select_bad_value_is_one_line_error(exported, capsys):
    assert main(["convert", str(exported), "--int8", "--calib-select", "4,x"]) == 2
    assert "--calib-select" in capsys.readouterr().err


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
            if p.suffix in (".tflite", ".onnx")}


def test_adding_builds_keeps_the_others_and_merges_the_report(exported, tmp_path, capsys):
    """Issue 34: `convert RUN --int8 --no-tflite-fp32 --no-onnx-fp32` on a converted export
    adds the int8 builds without --force, keeps the float builds byte for byte and the report
    keeps their parity rows; --force still rebuilds what is requested (and only that)."""
    out = tmp_path / "export"
    common = ["--out", str(out), "--latency-runs", "3"]
    assert main(["convert", str(exported), *common]) == 0
    floats = _digests(out)
    assert set(floats) == {BUILDS[0], BUILDS[2]}
    assert main(["convert", str(exported), "--int8", "--no-tflite-fp32", "--no-onnx-fp32",
                 "--qat-steps", "5", *common]) == 0
    after = _digests(out)
    assert set(after) == set(BUILDS)
    assert {k: after[k] for k in floats} == floats, "a float build was rebuilt"
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["parity"]["builds"]) == set(BUILDS)
    assert set(BUILDS) <= set(rep["builds"])
    md = (out / "report.md").read_text()
    assert all(f"| {b} |" in md for b in BUILDS), md
    assert (out / "per_class.png").is_file()
    # every requested build exists: refused, nothing changed
    capsys.readouterr()
    assert main(["convert", str(exported), "--int8", *common]) == 2
    err = capsys.readouterr().err
    assert "every requested build exists" in err and "--force" in err
    assert _digests(out) == after
    # --force rebuilds the requested int8 ONNX only; the report still has all four
    assert main(["convert", str(exported), "--int8", "--no-tflite-fp32", "--no-onnx-fp32",
                 "--no-tflite-int8", "--onnx-int8-from", "ort-s8s8", "--force", *common]) == 0
    forced = _digests(out)
    assert forced[BUILDS[3]] != after[BUILDS[3]]
    assert {k: v for k, v in forced.items() if k != BUILDS[3]} == {
        k: v for k, v in after.items() if k != BUILDS[3]}
    rep2 = json.loads((out / "report.json").read_text())
    assert set(rep2["parity"]["builds"]) == set(BUILDS)
    assert rep2["builds"][BUILDS[1]].get("qat") == rep["builds"][BUILDS[1]].get("qat")
