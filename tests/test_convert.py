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
from cli_sweep import run_cli
from conftest import make_spec

from fer_edge.cli import main
from fer_edge.errors import ModelFileError, SpecError
from fer_edge.runtime import load_predictor
from fer_edge.runtime.spec_io import embed_in_tflite, sidecar_path
from fer_edge.spec import Embedding, ModelSpec

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


#: the tiny model's pooled features: its last block has 48 filters
TINY_D = 48
FACES = np.random.default_rng(7).integers(0, 255, (40, 48, 48), dtype=np.uint8)


def test_every_build_carries_the_embedding(exported):
    """Each build loads with two outputs (probabilities, embedding) named and sized in its
    spec; embed() gives (N, D) float32; the run's own spec stays without an embedding."""
    assert ModelSpec.read(exported / "spec.json").embedding is None
    for b in BUILDS:
        p = load_predictor(exported / "export" / b, num_threads=1)
        e = p.spec.embedding
        assert e is not None and e.size == TINY_D, b
        assert len(e.mean) == len(e.std) == TINY_D and min(e.std) > 0, b
        assert ModelSpec.read(sidecar_path(p.path)) == p.spec
        emb = p.embed(FACES)
        assert emb.shape == (len(FACES), TINY_D) and emb.dtype == np.float32, b
        assert np.isfinite(emb).all() and emb.std() > 0, b
        probs, emb2 = p.predict(FACES, embedding=True)
        np.testing.assert_array_equal(probs, p.predict(FACES))
        np.testing.assert_array_equal(emb2, emb)
    names = {b: load_predictor(exported / "export" / b).spec.embedding.output for b in BUILDS}
    assert names[BUILDS[2]] == names[BUILDS[3]] == "embedding"  # ONNX: named by fer-edge
    assert "quant_avg_pool" in names[BUILDS[1]]  # int8 TFLite: the QAT pooling layer's output


def test_exported_graphs_list_probabilities_first(exported):
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    for b in BUILDS[:2]:
        it = Interpreter(model_path=str(exported / "export" / b))
        outs = it.get_output_details()
        assert [int(o["shape"][-1]) for o in outs] == [7, TINY_D], b
        if b.endswith("_int8.tflite"):
            assert all(o["dtype"] == np.int8 for o in outs)  # dequantised by the runtime
    for b in BUILDS[2:]:
        s = ort.InferenceSession(str(exported / "export" / b), providers=["CPUExecutionProvider"])
        assert [o.name for o in s.get_outputs()] == ["probs", "embedding"], b


def test_embedding_statistics_are_the_builds_own(exported):
    """mean/std in each spec are the build's embeddings of the seeded pick of training faces
    that `fer-edge convert` measures them on (recomputed here)."""
    from fer_edge.convert.config import ConvertConfig
    from fer_edge.convert.pipeline import _embedding_faces
    from fer_edge.data import load_dataset_for
    from fer_edge.runtime.embedding import embedding_stats

    run_cfg = json.loads((exported / "config.json").read_text())["config"]
    ds = load_dataset_for(run_cfg["data"], ModelSpec.read(exported / "spec.json").labels,
                          seed=run_cfg.get("seed", 0))
    faces = _embedding_faces(ds, run_cfg["data"], ConvertConfig.embedding_faces, 3)
    assert len(faces.images) == min(ConvertConfig.embedding_faces, len(ds.labels["train"]))
    means = {}
    for b in BUILDS:
        p = load_predictor(exported / "export" / b)
        assert p.spec.extra["embedding_stats"].startswith(faces.source), b
        mean, std = embedding_stats(p, faces.images)
        np.testing.assert_allclose(p.spec.embedding.mean, mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(p.spec.embedding.std, std, rtol=1e-4, atol=1e-6)
        means[b] = mean
    # each build measured its own: the int8 means are not the float ones
    assert not np.array_equal(means[BUILDS[0]], means[BUILDS[1]])


def test_onnx_and_tflite_embeddings_agree(exported):
    out = exported / "export"
    emb = {b: load_predictor(out / b).embed(FACES) for b in BUILDS}
    for a, b in ((BUILDS[0], BUILDS[2]), (BUILDS[1], BUILDS[3])):  # fp32 pair, int8 pair
        r = np.corrcoef(emb[a].ravel(), emb[b].ravel())[0, 1]
        assert r > 0.9, (a, b, r)
    assert np.abs(emb[BUILDS[0]] - emb[BUILDS[2]]).max() < 1e-3 * np.abs(emb[BUILDS[0]]).max()
    # the int8 ONNX reads the same int8 pooled tensor as the int8 TFLite
    assert np.abs(emb[BUILDS[1]] - emb[BUILDS[3]]).max() < 0.05 * np.abs(emb[BUILDS[1]]).max()
    # int8 vs fp32: the same features up to rounding (the tiny model has no concatenation,
    # whose channels tfmot may reorder in the QAT graph: convert/README.md)
    assert np.corrcoef(emb[BUILDS[0]].ravel(), emb[BUILDS[1]].ravel())[0, 1] > 0.9


def test_spec_naming_an_output_the_model_lacks_is_refused(exported, tmp_path):
    import onnx

    from fer_edge.runtime.spec_io import embed_in_onnx

    src = exported / "export" / BUILDS[0]
    spec = load_predictor(src).spec
    wrong = spec.replace(embedding=Embedding(
        "no_such_output", spec.embedding.size, spec.embedding.mean, spec.embedding.std))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(embed_in_tflite(src.read_bytes(), wrong))
    with pytest.raises(SpecError, match="no_such_output"):
        load_predictor(bad)
    none = tmp_path / "none.tflite"  # two outputs, a spec that names no embedding
    none.write_bytes(embed_in_tflite(src.read_bytes(), spec.replace(embedding=None)))
    with pytest.raises(SpecError, match="2 outputs"):
        load_predictor(none)
    proto = onnx.load(str(exported / "export" / BUILDS[2]))
    embed_in_onnx(proto, wrong)
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(proto.SerializeToString())
    with pytest.raises(SpecError, match="no_such_output"):
        load_predictor(bad_onnx)
    wrong_size = spec.replace(embedding=Embedding(
        spec.embedding.output, TINY_D + 1, (), ()))
    bad.write_bytes(embed_in_tflite(src.read_bytes(), wrong_size))
    with pytest.raises(SpecError, match="features"):
        load_predictor(bad)


def test_a_model_without_the_pooling_layer_is_refused():
    from fer_edge.convert.export import with_embedding
    from fer_edge.train._keras import keras

    inp = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Flatten()(inp)
    model = keras.Model(inp, keras.layers.Dense(7, activation="softmax", name="probs")(x))
    with pytest.raises(ModelFileError, match="avg_pool"):
        with_embedding(model)


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
    p = load_predictor(out / BUILDS[3])  # onnxruntime's quantisation keeps both outputs
    assert p.spec.embedding.output == "embedding" and p.spec.embedding.size == TINY_D
    r = np.corrcoef(p.embed(FACES).ravel(),
                    load_predictor(exported / "export" / BUILDS[2]).embed(FACES).ravel())[0, 1]
    assert r > 0.9


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
    # wrong input size in a sidecar bound to these weights (an unbound one is refused first)
    from fer_edge.runtime.spec_io import bind

    own = ModelSpec.read(sidecar_path(exported / "export" / BUILDS[0]))
    bind(bare.read_bytes(), own.replace(input_size=48)).write(sidecar_path(bare))
    with pytest.raises(SpecError, match="does not match"):
        load_predictor(bare)
    make_spec(input_size=48).write(sidecar_path(bare))
    with pytest.raises(SpecError, match="not bound"):
        load_predictor(bare)


@pytest.mark.tf
def test_package_default_writes_model_and_card(tiny_exported, tmp_path):
    script = Path(__file__).resolve().parents[1] / "convert" / "package_default.py"
    previous = {"sha256": "c" * 64, "source_run": "old75", "packaged": "2026-11-24"}
    (tmp_path / "fer_default_int8.card.json").write_text(json.dumps(previous))
    for _ in range(2):  # packaging the same build again keeps what it replaced
        r = subprocess.run([sys.executable, str(script), str(tiny_exported), "--dest",
                            str(tmp_path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-500:]
        card = json.loads((tmp_path / "fer_default_int8.card.json").read_text())
        assert card["replaces"] == previous
    model = tmp_path / "fer_default_int8.tflite"
    assert card["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    report = json.loads((tiny_exported / "export" / "report.json").read_text())
    build = report["parity"]["builds"][card["source_build"]]
    assert card["evaluation"]["accuracy"] == build["report"]["accuracy"]
    assert card["trained_epochs"] >= 1 and card["source_build"].endswith("_int8.tflite")
    packaged = load_predictor(model)
    assert packaged.spec.labels == tuple(card["labels"])
    assert packaged.embed(FACES[:2]).shape == (2, TINY_D)  # the embedding output comes along


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


def test_convert_keeps_litert_quiet(exported, tmp_path):
    """Issue 34: LiteRT's native "Created TensorFlow Lite XNNPACK delegate" line (printed on
    fd 2 once per process, below Python) is not shown by convert. A fresh process, since the
    line is printed only once per process."""
    import subprocess
    import sys

    out = tmp_path / "export"
    r = subprocess.run([sys.executable, "-m", "fer_edge.cli", "convert", str(exported),
                        "--int8", "--no-tflite-fp32", "--no-onnx-fp32", "--no-onnx-int8",
                        "--qat-steps", "3", "--latency-runs", "3", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "XNNPACK" not in r.stderr, r.stderr[-2000:]
