"""FER+ labels, class-folder synonyms, detector-true augmentation, mixing and the weight EMA."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (
    ROOT,  # noqa: E402
    interrupt_training_after,  # noqa: E402
)
from conftest import TINY_TRAIN_ARGS as TINY

from fer_edge.cli import main
from fer_edge.data import load_dataset
from fer_edge.data.ferplus import apply_labels, read_ferplus
from fer_edge.data.synthetic import make_faces, write_ferplus, write_npz
from fer_edge.errors import DataError

FERPLUS = ROOT.parent / "shared" / "data" / "ferplus" / "fer2013new.csv"
CKPLUS = ROOT.parent / "shared" / "data" / "ckplus48"
DEFAULT_MODEL = ROOT / "fer_edge" / "assets" / "fer_default_int8.tflite"


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    d = tmp_path_factory.mktemp("fp")
    npz = write_npz(d / "syn.npz", 280, 70, 140)
    return npz, write_ferplus(d / "fer2013new.csv", npz)


def _rewrite(src: Path, dst: Path, fn) -> Path:
    rows = list(csv.reader(src.open()))
    rows = fn(rows)
    with dst.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return dst


def test_reader_on_generated_csv(syn):
    npz, fp_csv = syn
    fp = read_ferplus(fp_csv, expected_rows=490)
    assert len(fp) == 490 and fp.votes.shape == (490, 10)
    keep = fp.keep
    # every 25th row is unnamed not-a-face, every 30th row's plurality contempt/unknown
    i = np.arange(490)
    assert not keep[(i % 25 == 24) | ((i % 30 == 29) & (i % 25 != 24))].any()
    assert keep.sum() == 490 - len({*range(24, 490, 25), *range(29, 490, 30)})
    major, soft = fp.majority(), fp.soft()
    assert (major[~keep] == -1).all() and (soft[~keep] == 0).all()
    np.testing.assert_allclose(soft[keep].sum(1), 1.0, rtol=1e-6)
    assert (soft[keep].argmax(1) == major[keep]).all()
    labels = np.load(npz)["labels"]
    assert 0.6 < np.mean(major[keep] == labels[keep]) < 0.9  # generated at agree=0.7

    ds = apply_labels(load_dataset(npz), "ferplus-soft", str(fp_csv), fer2013_weight=0.5)
    for split, n in (("train", 280), ("val", 70), ("test", 140)):
        rows = ds.rows[split]
        assert len(ds.labels[split]) == len(rows) == keep[rows].sum() < n
        t = ds.targets[split]
        np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
        # weight 0.5: the argmax of the mixed target is always the FER-2013 label
        assert (ds.labels[split] == labels[rows]).all()
    assert "faces dropped" in ds.notes[-1]
    ds = apply_labels(load_dataset(npz), "ferplus-majority", str(fp_csv))
    assert (ds.labels["test"] == major[ds.rows["test"]]).all() and not ds.targets


@pytest.mark.parametrize("edit, message", [
    (lambda r: r[:-5], "485 rows but the FER-2013 data has 490"),
    (lambda r: [r[0][:-1]] + [x[:-1] for x in r[1:]], "columns"),
    (lambda r: r[:3] + [r[3][:2] + ["5"] * 10] + r[4:], "line 4: votes sum to 50"),
    (lambda r: r[:2] + [r[2][:5] + ["x"] + r[2][6:]] + r[3:], "line 3: a vote is not an "),
    (lambda r: r[:2] + [["Train"] + r[2][1:]] + r[3:], "Usage 'Train'"),
    (lambda r: r[:1] + r[300:301] + r[2:300] + r[1:2] + r[301:], "Usage disagrees"),
])
def test_bad_ferplus_file_names_the_row(syn, tmp_path, edit, message):
    npz, fp_csv = syn
    bad = _rewrite(fp_csv, tmp_path / "bad.csv", edit)
    with pytest.raises(DataError, match=message):
        apply_labels(load_dataset(npz), "ferplus-majority", str(bad))


def test_ferplus_needs_row_aligned_data(tmp_path, syn):
    from fer_edge.data.synthetic import write_folders

    root = write_folders(tmp_path / "f", 14, 14)
    with pytest.raises(DataError, match="no such rows"):
        apply_labels(load_dataset(root), "ferplus-majority", str(syn[1]))


def test_real_ferplus_file(fer_npz):
    if not FERPLUS.is_file():
        pytest.skip(f"FER+ votes not found at {FERPLUS}")
    fp = read_ferplus(FERPLUS, expected_rows=35887)
    assert int(fp.keep.sum()) == 35272 and int((~fp.named).sum()) == 173
    labels = np.load(fer_npz)["labels"]
    agree = np.mean(fp.majority()[fp.keep] == labels[fp.keep])
    assert 0.625 < agree < 0.645  # the README's "about 63 %"
    ds = apply_labels(load_dataset(fer_npz), "ferplus-majority", str(FERPLUS))
    assert len(ds.labels["test"]) == 3519  # PrivateTest minus 70 dropped faces


def _class_folders(root: Path, names: dict[str, int]) -> Path:
    x, _ = make_faces(8 * len(names), seed=3)
    k = 0
    for name, n in names.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / name / f"S{i:03d}_001_{i:08d}.png"), x[k])
            k += 1
    return root


def test_folder_synonyms_and_unknown_classes(tmp_path, capsys):
    from fer_edge.data.readers import class_id

    assert [class_id(n) for n in ("anger", "Sadness", "happiness", "Surprised", "fearful",
                                  "disgusted", "neutral", "3", "contempt")] == [
        0, 4, 3, 5, 2, 1, 6, 3, None]
    root = _class_folders(tmp_path / "ck", {"anger": 6, "contempt": 5, "happiness": 6,
                                            "sadness": 6, "surprise": 6})
    with pytest.raises(DataError, match="'contempt': it maps to none.*--skip-unknown-classes"):
        load_dataset(root)
    assert main(["evaluate", str(DEFAULT_MODEL), "--data", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "contempt" in err[0] and "--skip-unknown-classes" in err[0]
    ds = load_dataset(root, skip_unknown_classes=True)
    n = sum(len(ds.labels[s]) for s in ("train", "val", "test"))
    assert n == 24 and any("'contempt' (5 images) skipped" in note for note in ds.notes)
    ys = np.concatenate([ds.labels[s] for s in ("train", "val", "test")])
    assert sorted(set(ys.tolist())) == [0, 3, 4, 5]


def test_real_ckplus48_reads_as_it_is():
    if not CKPLUS.is_dir():
        pytest.skip(f"CK+48 not found at {CKPLUS}")
    ds = load_dataset(CKPLUS, skip_unknown_classes=True)
    counts = sum(ds.counts(s) for s in ("train", "val", "test"))
    assert counts.tolist() == [135, 177, 75, 207, 84, 249, 0]  # contempt (54) skipped


def test_evaluate_with_ferplus_majority_labels(syn, tmp_path, capsys):
    npz, fp_csv = syn
    out = tmp_path / "ev"
    assert main(["evaluate", str(DEFAULT_MODEL), "--data", str(npz), "--labels",
                 "ferplus-majority", "--ferplus", str(fp_csv), "--latency-runs", "2",
                 "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())["parity"]
    fp = read_ferplus(fp_csv)
    test_rows = np.flatnonzero(np.load(npz)["usage"] == 2)
    assert rep["n"] == int(fp.keep[test_rows].sum())
    support = [c["support"] for c in rep["builds"][DEFAULT_MODEL.name]["report"]["per_class"]]
    assert support == np.bincount(fp.majority()[test_rows][fp.keep[test_rows]],
                                  minlength=7).tolist()
    assert "FER+ majority labels" in capsys.readouterr().out
    assert main(["evaluate", str(DEFAULT_MODEL), "--data", str(npz), "--labels",
                 "ferplus-majority"]) == 2


@pytest.mark.tf
def test_augmentations_and_mixing_in_the_graph():
    from fer_edge.train._keras import tf
    from fer_edge.train.pipeline import Augment, Mix, augment_batch, mix_batch

    flat = tf.fill([4, 32, 32], 100.0)
    off = Augment(flip=False, rotation_deg=0, shift=0, zoom=0, brightness=0, contrast=0)
    # blur, noise and JPEG at probability 0 leave a face alone; blur keeps a flat face flat
    x = tf.constant(make_faces(4, seed=1, size=32)[0].astype(np.float32))
    same = augment_batch(x, Augment(**{**off.__dict__, "blur_sigma": 2.0, "noise": 0.1,
                                       "jpeg_quality": 10, "degrade_prob": 0.0}), 32)
    np.testing.assert_allclose(same.numpy(), x.numpy(), atol=1e-2)
    blurred = augment_batch(flat, Augment(**{**off.__dict__, "blur_sigma": 2.0,
                                             "degrade_prob": 1.0}), 32)
    np.testing.assert_allclose(blurred.numpy(), 100.0, atol=1e-3)
    sharp = augment_batch(x, Augment(**{**off.__dict__, "blur_sigma": 2.0,
                                        "degrade_prob": 1.0}), 32).numpy()
    assert np.abs(np.diff(sharp, axis=2)).mean() < np.abs(np.diff(x.numpy(), axis=2)).mean()
    degraded = augment_batch(x, Augment(**{**off.__dict__, "noise": 0.05, "jpeg_quality": 10,
                                           "gamma": 0.5, "degrade_prob": 1.0}), 32).numpy()
    assert degraded.min() >= 0 and degraded.max() <= 255 and not np.allclose(degraded, x)
    y = tf.one_hot([0, 1, 2, 3], 7)
    for kind in ("mixup", "cutmix"):
        xm, ym = mix_batch(x, y, Mix(kind, alpha=1.0, prob=1.0))
        np.testing.assert_allclose(ym.numpy().sum(1), 1.0, rtol=1e-5)
        assert (ym.numpy() > 0).sum() > 4  # targets were mixed
        assert xm.shape == x.shape


@pytest.mark.tf
def test_soft_labels_ema_mix_and_resume(syn, tmp_path, monkeypatch):

    npz, fp_csv = syn
    restore = interrupt_training_after(monkeypatch, 2)
    args = ["train", "--data", str(npz), "--weights", "none", "--finetune-epochs", "4",
            "--runs-dir", str(tmp_path), "--name", "soft", *TINY, "--labels", "ferplus-soft",
            "--ferplus", str(fp_csv), "--fer2013-weight", "0.3", "--ema", "0.9",
            "--imbalance", "sqrt_inverse", "--mix", "mixup", "--augment", "--blur-sigma", "1",
            "--noise", "0.02", "--jpeg-quality", "50", "--gamma", "0.2", "--fill-mode",
            "nearest", "--patience", "0"]
    assert main(args) == 130
    run = tmp_path / "soft"
    ckpt_ema = [n for n, _ in __import__("tensorflow").train.list_variables(
        str(run / "ckpt" / "finetune")) if n.startswith("ema/")]
    assert ckpt_ema, "the weight EMA is part of the resume checkpoint"
    restore()
    assert main(["train", "--resume", "--runs-dir", str(tmp_path), "--name", "soft"]) == 0
    hist = list(csv.DictReader((run / "history.csv").open()))
    assert [r["epoch"] for r in hist] == ["1", "2", "3", "4"]
    assert all(float(r["val_accuracy"]) >= 0 for r in hist)
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg["labels"] == "ferplus-soft" and cfg["ema"] == 0.9
    rep = json.loads((run / "eval" / "test_report.json").read_text())["models"]["float"]
    assert rep["n"] == len(apply_labels(load_dataset(npz), "ferplus-soft", str(fp_csv),
                                        0.3).labels["test"])
    assert rep["accuracy"] > 0.3  # synthetic classes are learnable from mixed soft targets
