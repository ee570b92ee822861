"""Backbones (``--arch``), their normalisation in the spec, ``--init`` transfer to new classes,
``--budget-min`` and the bad inputs of issue 15."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import TINY_TRAIN_ARGS as TINY  # noqa: E402
from conftest import make_spec

from fer_edge.cli import main
from fer_edge.data.synthetic import make_faces, write_npz
from fer_edge.spec import ModelSpec
from fer_edge.train.backbones import ARCHS, BACKBONES, block_ends, check_input_size

KERAS_ARCHS = [a for a in ARCHS if a != "tiny_cnn"]


def write_class_folders(root, names, n_per_class=12, seed=0):
    """Synthetic images in ``root/<name>/`` (one synthetic class per folder)."""
    x, y = make_faces(n_per_class * len(names), seed, num_classes=len(names))
    for i, (img, lab) in enumerate(zip(x, y)):
        d = root / names[lab]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"im{i}.png"), img)
    return root


# --- light: registry and spec -----------------------------------------------------------


def test_registry_sizes_and_bad_sizes():
    from fer_edge.errors import ConfigError

    assert check_input_size("inception_v3", 0) == 75
    assert check_input_size("vgg16", 0) == 48
    with pytest.raises(ConfigError, match="below the inception_v3 minimum of 75"):
        check_input_size("inception_v3", 64)
    with pytest.raises(ConfigError, match="unknown arch 'alexnet'"):
        check_input_size("alexnet", 0)
    for b in BACKBONES.values():
        assert b.min_size <= b.default_size


def test_block_pattern_groups_layers():
    names = ["image", "block1_conv1", "block1_pool", "block2_conv1", "block2_pool", "avg_pool"]
    assert block_ends(names, "vgg16") == [2, 4]
    names = ["image", "mixed0", "conv2d", "mixed9_0", "mixed9", "avg_pool"]
    assert block_ends(names, "inception_v3") == [1, 4]


def test_per_channel_normalisation_round_trips_and_is_applied():
    from fer_edge.errors import SpecError
    from fer_edge.preprocess import normalize

    spec = make_spec(arch="vgg16", input_size=48, norm_scale=1.0,
                     norm_offset=(-103.939, -116.779, -123.68))
    back = ModelSpec.from_json(spec.to_json())
    assert back == spec and isinstance(back.norm_offset, tuple)
    x = normalize(np.full((1, 4, 4), 100.0, np.float32), spec)
    assert x.shape == (1, 4, 4, 3)
    np.testing.assert_allclose(x[0, 0, 0], [100 - 103.939, 100 - 116.779, 100 - 123.68],
                               rtol=1e-6)
    with pytest.raises(SpecError, match="one number per channel"):
        make_spec(norm_offset=(1.0, 2.0)).validate()


@pytest.mark.parametrize("argv, msg", [
    (["--arch", "alexnet"], "invalid choice: 'alexnet'"),
    (["--arch", "inception_v3", "--input-size", "48"], "below the inception_v3 minimum"),
    (["--arch", "mobilenet_v3_small", "--input-size", "16"], "minimum of 32"),
])
def test_bad_arch_and_size_are_one_line_exit_2(argv, msg, tmp_path, capsys):
    try:
        rc = main(["train", "--data", "synthetic", "--runs-dir", str(tmp_path), *argv])
    except SystemExit as exc:  # argparse rejects an unknown choice itself
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert msg in err[-1] and not any("Traceback" in ln for ln in err)
    assert not any(tmp_path.iterdir())


def test_one_class_folder_set_is_one_line_exit_2(tmp_path, capsys):
    write_class_folders(tmp_path / "faces", ["happy"])
    assert main(["train", "--data", str(tmp_path / "faces"), "--runs-dir",
                 str(tmp_path / "runs"), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # progress lines, then one error line
    assert [ln for ln in err if ": error: " in ln] == err[-1:], err
    assert "at least 2 class folders" in err[-1]


def test_own_classes_are_the_folder_names(tmp_path):
    from fer_edge.data import load_dataset
    from fer_edge.errors import DataError

    root = write_class_folders(tmp_path / "mine", ["thumbs_up", "frown", "blank"])
    ds = load_dataset(root, own_classes=True)
    assert ds.class_names == ("blank", "frown", "thumbs_up")
    assert len(ds.counts("train")) == 3 and sum(len(v) for v in ds.labels.values()) == 36
    with pytest.raises(DataError, match="unknown class folder"):
        load_dataset(root)  # FER-2013 classes only without own_classes


# --- TensorFlow --------------------------------------------------------------------------


@pytest.mark.tf
def test_archs_build_flat():
    """VGG16 and EfficientNetB0 (its preprocessing layers cut out) build flat; every arch in
    the slow variant; MobileNetV3 in test_mobilenet_hard_swish_fused_exactly."""
    check_archs_build_flat(all_archs=False)


@pytest.mark.tf
@pytest.mark.slow
def test_every_arch_builds_flat():
    """85 s on a loaded 2-core machine."""
    check_archs_build_flat(all_archs=True)


def check_archs_build_flat(all_archs: bool):
    """Each Keras backbone at its minimum size: flat, no preprocessing or TFOpLambda layer in
    the graph, the right shapes, block-wise freezing, its normalisation for the spec."""
    from fer_edge.train._keras import keras
    from fer_edge.train.model import arch_normalisation, build_model, set_stage

    for arch in KERAS_ARCHS if all_archs else ("vgg16", "efficientnet_b0"):
        size = BACKBONES[arch].min_size
        model = build_model(make_spec(input_size=size, arch=arch, labels=("a", "b", "c")),
                            "none")
        types = {type(layer).__name__ for layer in model.layers}
        assert not any(isinstance(layer, keras.Model) for layer in model.layers), arch
        assert not types & {"Rescaling", "Normalization", "TFOpLambda"}, (arch, types)
        assert model.input_shape == (None, size, size, 3) and model.output_shape == (None, 3)
        set_stage(model, "finetune", unfreeze_blocks=1)
        assert any(layer.trainable for layer in model.layers[:-3] if layer.weights), arch
        assert not all(layer.trainable for layer in model.layers if layer.weights), arch
        keras.backend.clear_session()
    for arch in ("inception_v3", "mobilenet_v3_small"):
        assert arch_normalisation(arch) == ((1 / 127.5,) * 3, (-1.0,) * 3)
    assert arch_normalisation("vgg16") == ((1.0,) * 3, (-103.939, -116.779, -123.68))
    if not all_archs:
        return
    s, o = arch_normalisation("efficientnet_b0")  # its Rescaling(1/255) moved into the spec
    np.testing.assert_allclose(s, [1 / 255] * 3, rtol=1e-6)
    np.testing.assert_allclose(o, [0, 0, 0], atol=1e-7)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("arch", KERAS_ARCHS)
def test_arch_train_step(arch):
    """One train step of each backbone (5 min for all 7 on a loaded 2-core machine)."""
    from fer_edge.train._keras import keras
    from fer_edge.train.model import build_model

    size = BACKBONES[arch].min_size
    model = build_model(make_spec(input_size=size, arch=arch, labels=("a", "b", "c")), "none")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    assert np.isfinite(model.train_on_batch(x, np.array([0, 2])))


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("arch", KERAS_ARCHS)
def test_arch_trains_converts_and_int8_is_all_integer(arch, tmp_path):
    """fer-edge train (1 epoch, synthetic) -> convert --int8 -> four builds; the int8 TFLite
    has no float op (every layer quantised: MaxPooling2D, Multiply, Reshape, HardSwish,
    HardSigmoid with output quantizers, EfficientNet's conv swish split out)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    size = BACKBONES[arch].min_size
    npz = write_npz(tmp_path / "syn.npz", 112, 28, 28)
    assert main(["train", "--data", str(npz), "--arch", arch, "--input-size", str(size),
                 "--weights", "none", "--finetune-epochs", "1", "--batch-size", "16",
                 "--no-augment", "--no-tensorboard", "--runs-dir", str(tmp_path),
                 "--name", "r"]) == 0
    # random-ish models: the gate is not the point here, the builds are
    assert main(["convert", str(tmp_path / "r"), "--int8", "--qat-epochs", "0",
                 "--latency-runs", "2", "--min-agreement", "0", "--max-drop-pp", "100",
                 "--max-class-p", "1e-12"]) == 0
    out = tmp_path / "r" / "export"
    stem = f"fer_{arch}_{size}"
    for kind in ("fp32.tflite", "int8.tflite", "fp32.onnx", "int8.onnx"):
        assert (out / f"{stem}_{kind}").is_file(), kind
    it = Interpreter(model_path=str(out / f"{stem}_int8.tflite"),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    td = {t["index"]: t for t in it.get_tensor_details()}
    float_ops = [o["op_name"] for o in it._get_ops_details() if any(
        i in td and td[i]["dtype"] == np.float32 for i in o["inputs"] if i >= 0)]
    assert float_ops == [], float_ops


@pytest.mark.tf
def test_mobilenet_hard_swish_fused_exactly():
    """The HardSwish/HardSigmoid layers compute what tf_keras's TFOpLambda chain did."""
    from fer_edge.train._keras import keras
    from fer_edge.train.backbones import build_backbone

    inp = keras.Input((32, 32, 3), name="image")
    ref = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                              input_tensor=inp, include_preprocessing=False)
    inp2 = keras.Input((32, 32, 3), name="image")
    fused_in, fused_out, _, _ = build_backbone(inp2, "mobilenet_v3_small", None)
    fused = keras.Model(fused_in, fused_out)
    for layer in fused.layers:
        if layer.weights:
            layer.set_weights(ref.get_layer(layer.name).get_weights())
    types = {type(layer).__name__ for layer in fused.layers}
    assert {"HardSwish", "HardSigmoid"} <= types and "TFOpLambda" not in types
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(fused(x), ref(x), atol=1e-5)


@pytest.mark.tf
@pytest.mark.slow
def test_weights_path_and_imagenet_paths(tmp_path, capsys):
    """--weights PATH loads a local include_top=False file (saved here from weights=None);
    --weights imagenet takes Keras's download path, which fails here with one line."""
    from fer_edge.errors import ModelFileError
    from fer_edge.train._keras import keras
    from fer_edge.train.model import build_model

    inp = keras.Input((32, 32, 3))
    app = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                              input_tensor=inp, include_preprocessing=False)
    path = tmp_path / "mnv3s_notop.h5"
    app.save_weights(path)
    spec = make_spec(input_size=32, arch="mobilenet_v3_small")
    model = build_model(spec, str(path))
    np.testing.assert_array_equal(model.get_layer("Conv").get_weights()[0],
                                  app.get_layer("Conv").get_weights()[0])
    with pytest.raises(ModelFileError, match="could not download the ImageNet weights"):
        build_model(spec, "imagenet")
    with pytest.raises(ModelFileError, match="weights file not found"):
        build_model(spec, str(tmp_path / "missing.h5"))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A tiny 7-class FER-style run on synthetic data."""
    root = tmp_path_factory.mktemp("base")
    npz = write_npz(root / "syn.npz", 280, 70, 70)
    assert main(["train", "--data", str(npz), "--weights", "none", "--finetune-epochs", "3",
                 "--runs-dir", str(root), "--name", "base", *TINY]) == 0
    return root / "base"


@pytest.mark.tf
def test_init_with_new_classes_then_convert(base_run, tmp_path):
    """--init a 7-class run with a 3-class folder set: new head, the user's labels in the
    spec, transfer then fine-tuning, and the result converts and passes the gate."""
    faces = write_class_folders(tmp_path / "my_faces", ["me_happy", "me_sad", "me_bored"], 40)
    assert main(["train", "--data", str(faces), "--init", str(base_run / "model_float.h5"),
                 "--head-epochs", "2", "--finetune-epochs", "2", "--unfreeze-blocks", "1",
                 "--runs-dir", str(tmp_path), "--name", "mine", *TINY]) == 0
    run = tmp_path / "mine"
    spec = json.loads((run / "spec.json").read_text())
    assert spec["labels"] == ["me_bored", "me_happy", "me_sad"]
    assert spec["arch"] == "tiny_cnn" and spec["input_size"] == 32
    assert spec["extra"]["init"]["labels"][0] == "angry"
    hist = (run / "history.csv").read_text()
    assert "head" in hist and "finetune" in hist
    rep = json.loads((run / "eval/test_report.json").read_text())["models"]["final"]
    assert len(rep["per_class"]) == 3 and rep["accuracy"] > 0.5  # chance 0.33, n = 12
    assert main(["convert", str(run), "--qat-epochs", "0", "--latency-runs", "3",
                 "--no-onnx-fp32"]) == 0
    from fer_edge.runtime import load_predictor

    pred = load_predictor(run / "export" / "fer_tiny_cnn_32_fp32.tflite")
    assert pred.spec.labels == ("me_bored", "me_happy", "me_sad")
    assert pred.predict(np.zeros((2, 48, 48), np.uint8)).shape == (2, 3)
    from fer_edge.demo.config import DemoConfig
    from fer_edge.demo.loop import run_demo

    log = tmp_path / "faces.csv"  # the demo on the packaged clip, logging the user's labels
    assert run_demo(DemoConfig(video="sample", headless=True, log=str(log)),
                    predictor=pred).summary()["fps"] > 0
    assert "me_bored" in log.read_text().splitlines()[0]


@pytest.mark.tf
def test_init_bad_source_is_one_line_exit_2(base_run, tmp_path, capsys):
    faces = write_class_folders(tmp_path / "f", ["a", "b"])
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "model_float.h5").write_bytes(b"not a model")
    for bad in (notes, tmp_path / "nothing", lonely):
        assert main(["train", "--data", str(faces), "--init", str(bad), "--runs-dir",
                     str(tmp_path / "runs"), *TINY]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not a fer-edge" in err[0] or "no spec.json" in err[0], err
    assert not (tmp_path / "runs").exists()


@pytest.mark.tf
def test_budget_stops_training(tmp_path):
    assert main(["train", "--data", "synthetic", "--weights", "none", "--finetune-epochs",
                 "50", "--budget-min", "0.05", "--limit", "200", "--runs-dir", str(tmp_path),
                 "--name", "b", *TINY]) == 0
    rows = (tmp_path / "b" / "history.csv").read_text().strip().splitlines()
    assert 2 <= len(rows) < 40  # header + a few epochs, far from 50
    assert (tmp_path / "b" / "model_float.h5").is_file()


def test_cli_help_lists_archs():
    out = subprocess.run([sys.executable, "-m", "fer_edge", "train", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for arch in ARCHS:
        assert arch in out


@pytest.mark.tf
@pytest.mark.slow
def test_backbones_benchmark_end_to_end(tmp_path):
    """studies/backbones/backbones.py on tiny settings: train (budget) -> convert -> benchmark
    -> CSV."""
    from conftest import ROOT

    res = subprocess.run(
        [sys.executable, str(ROOT / "studies" / "backbones" / "backbones.py"), "--data",
         "synthetic",
         "--archs", "tiny_cnn", "--budget-min", "0.1", "--recipe", "", "--convert-config", "",
         "--train-args", "--input-size 32 --limit 200 --batch-size 16 --no-tensorboard "
         "--finetune-lr 1e-2 --warmup-epochs 0", "--convert-args",
         "--qat-epochs 0 --latency-runs 3", "--work", str(tmp_path / "w"), "--tag", "t",
         "--results", str(tmp_path / "res"), "--bench-runs", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    import csv

    with (tmp_path / "res" / "backbones_t.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["arch"] == "tiny_cnn" and float(row["int8_ms_1t"]) > 0
    assert float(row["demo_fps_1t"]) > 0 and "recall_disgust" in row


@pytest.mark.tf
@pytest.mark.slow
def test_transfer_ckplus_end_to_end(base_run, tmp_path):
    """studies/transfer_ckplus/transfer_ckplus.py on a CK+-like folder set (subjects in the file
    names)."""
    from conftest import ROOT

    names = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    x, y = make_faces(7 * 18, 0, num_classes=7)
    for i, (img, lab) in enumerate(zip(x, y)):
        d = tmp_path / "ck" / names[lab]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"S{i % 9:03d}_001_{i:08d}.png"), img)
    res = subprocess.run(
        [sys.executable, str(ROOT / "studies" / "transfer_ckplus" / "transfer_ckplus.py"), "--base",
         str(base_run), "--data", str(tmp_path / "ck"), "--folds", "3", "--only-folds", "1",
         "--head-epochs", "1", "--finetune-epochs", "1", "--scratch-epochs", "1",
         "--unfreeze-blocks", "1", "--warmup-epochs", "0", "--work", str(tmp_path / "w"),
         "--tag", "t", "--results", str(tmp_path / "res")],
        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    text = (tmp_path / "res" / "transfer_ckplus_t.csv").read_text()
    for cond in ("zero_shot", "transfer", "finetune", "scratch"):
        assert cond in text
    assert "| finetune | 1 |" in res.stdout


def test_transfer_folds_are_subject_disjoint_and_export_as_folders(tmp_path):
    """studies/transfer_ckplus/transfer_ckplus.py --export-dir (run as a script): each fold's
    test/ holds whole subjects that its train/ does not, the folds' test sets partition the
    subjects, and an existing folder is refused."""
    from conftest import ROOT

    script = ROOT / "studies" / "transfer_ckplus" / "transfer_ckplus.py"
    names = ["anger", "contempt", "happy"]
    x, y = make_faces(3 * 24, 0, num_classes=3)
    for i, (img, lab) in enumerate(zip(x, y)):
        d = tmp_path / "ck" / names[lab]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"S{i % 12:03d}_001_{i:08d}.png"), img)

    def export(fold: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), "--data", str(tmp_path / "ck"), "--folds", "3",
             "--export-fold", str(fold),
             "--export-dir", str(tmp_path / f"f{fold}")],
            cwd=ROOT, capture_output=True, text=True, timeout=300)

    def subjects(folder) -> set[str]:
        return {p.name.split("_")[0] for p in folder.rglob("*.png")}

    seen = set()
    for fold in (1, 2, 3):
        res = export(fold)
        assert res.returncode == 0, res.stderr[-2000:]
        test_s, train_s = subjects(tmp_path / f"f{fold}" / "test"), subjects(
            tmp_path / f"f{fold}" / "train")
        assert test_s and train_s and not test_s & train_s
        assert len(list((tmp_path / f"f{fold}" / "test").rglob("*.png"))) == 24
        assert not test_s & seen
        seen |= test_s
    assert len(seen) == 12
    again = export(1)
    assert again.returncode != 0 and "exists" in again.stderr


@pytest.mark.tf
def test_budget_schedule_anneals_within_the_budget():
    """With --budget-min the cosine follows the budget's clock when that ends first: half the
    budget spent on a 12-epoch schedule is the middle of the cosine, however few steps ran."""
    from fer_edge.train.fit import _Schedule

    class Clock:
        share = 0.0

        def fraction(self):
            return self.share

    clock = Clock()
    s = _Schedule(1.0, epochs=12, steps=100, warmup=1, budget=clock)
    plain = _Schedule(1.0, epochs=12, steps=100, warmup=1)
    assert s.lr_at(0, 10) == pytest.approx(plain.lr_at(0, 10))  # clock at 0: steps rule
    clock.share = 0.5  # 6 epochs' worth of time, 0.1 epoch of steps
    assert s.lr_at(0, 10) == pytest.approx(plain.lr_at(6, 0))
    assert 0.4 < s.lr_at(0, 10) < 0.6
    clock.share = 1.0
    assert s.lr_at(0, 10) == pytest.approx(0.01)  # annealed when the budget is spent
    clock.share = 0.1  # steps ahead of the clock: steps rule
    assert s.lr_at(11, 0) == pytest.approx(plain.lr_at(11, 0))
