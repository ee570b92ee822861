"""Data readers refuse pixels they would otherwise cast silently (issue 34), and a truncated
``.npz`` is one line in every command that reads data. Light tier except the train/convert
cases (marked ``tf``)."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
from cli_sweep import run_cli, snapshot
from conftest import HAS_TF, make_spec

from fer_edge.data import load_dataset
from fer_edge.data.synthetic import make_faces, write_csv
from fer_edge.errors import DataError
from fer_edge.runtime import default_model_path

DEFAULT = default_model_path()


def _npz(path, images, usage=None):
    n = len(images)
    _, y = make_faces(n, 1)
    np.savez(path, images=images, labels=y.astype(np.uint8),
             usage=np.arange(n) % 3 if usage is None else usage)
    return path


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory):
    w = tmp_path_factory.mktemp("readers")
    x, _ = make_faces(30, 0)
    f = x.astype(np.float32)
    f[3, 10, 10] = np.nan
    _npz(w / "nan.npz", f)
    g = x.astype(np.float64)
    g[5, 0, 0] = np.inf
    _npz(w / "inf.npz", g)
    _npz(w / "unit.npz", x.astype(np.float32) / 255)
    _npz(w / "int16.npz", x.astype(np.int16) * 4)
    _npz(w / "negative.npz", x.astype(np.int16) - 20)
    _npz(w / "strings.npz", x.astype(str))
    whole = _npz(w / "whole.npz", x).read_bytes()
    (w / "truncated.npz").write_bytes(whole[:len(whole) // 2])
    return w


@pytest.mark.parametrize("name, words", [
    ("nan", ["NaN or infinite", "uint8"]), ("inf", ["NaN or infinite"]),
    ("unit", ["0..1", "* 255"]), ("int16", ["outside 0..255", "uint8"]),
    ("negative", ["outside 0..255"]), ("strings", ["not numbers"]),
    ("truncated", ["truncated or corrupt", "again"])])
def test_npz_bad_pixels_refused(bad_data, name, words):
    with pytest.raises(DataError) as exc:
        load_dataset(bad_data / f"{name}.npz")
    for w in words:
        assert w in str(exc.value)


def test_npz_good_pixels_in_other_dtypes_accepted(tmp_path):
    """Integer or float arrays of grey levels 0..255 are what predict() takes; so do readers."""
    x, _ = make_faces(30, 0)
    for dtype in (np.int16, np.int64, np.float32):
        ds = load_dataset(_npz(tmp_path / f"{np.dtype(dtype).name}.npz", x.astype(dtype)))
        got = np.concatenate([ds.images[s] for s in ("train", "val", "test")])
        assert got.dtype == np.uint8
        assert sorted(got.ravel().tolist()) == sorted(x.ravel().tolist())


def test_test_only_npz_scores_its_split(tmp_path):
    """An .npz of PrivateTest rows only: scoring needs only the split it scores."""
    x, _ = make_faces(20, 0)
    path = _npz(tmp_path / "test_only.npz", x, usage=np.full(20, 2))
    ds = load_dataset(path, need=("test",))
    assert len(ds.labels["test"]) == 20 and len(ds.labels["train"]) == 0
    with pytest.raises(DataError, match="the train split is empty"):
        load_dataset(path)  # training needs every split
    with pytest.raises(DataError, match=r"--split \(test 20\)"):
        load_dataset(path, need=("val",))


LIGHT = [("evaluate", "evaluate {M} --data {W}/{F} --latency-runs 1"),
         ("benchmark", "benchmark {M} --data {W}/{F} --video '' --runs 1 --out {W}/res")]
HEAVY = [("train", "train --data {W}/{F} --runs-dir {W}/runs --name r --weights none "
          "--arch tiny_cnn --input-size 32"),
         ("convert", "convert {W}/run --data {W}/{F}")]


@pytest.mark.skipif(DEFAULT is None, reason="this checkout has no packaged model")
@pytest.mark.parametrize("cmd", [c[1] for c in LIGHT], ids=[c[0] for c in LIGHT])
@pytest.mark.parametrize("bad", ["truncated.npz", "nan.npz", "unit.npz", "int16.npz"])
def test_cli_bad_npz_is_one_line(bad_data, cmd, bad, capsys):
    _one_line(bad_data, cmd, bad, capsys)


@pytest.mark.tf
@pytest.mark.skipif(not HAS_TF, reason="train/convert need the train extra")
@pytest.mark.parametrize("cmd", [c[1] for c in HEAVY], ids=[c[0] for c in HEAVY])
@pytest.mark.parametrize("bad", ["truncated.npz", "unit.npz"])
def test_cli_bad_npz_is_one_line_train_convert(bad_data, cmd, bad, capsys):
    run = bad_data / "run"
    if not run.is_dir():  # a run folder convert accepts up to reading the data

        run.mkdir()
        (run / "model_float.h5").write_bytes(b"never read: the data fails first")
        make_spec().write(run / "spec.json")
    _one_line(bad_data, cmd, bad, capsys)


def _one_line(w, cmd, bad, capsys):
    before = snapshot(w)
    rc, err, _ = run_cli(shlex.split(cmd.format(W=w, F=bad, M=DEFAULT)), capsys)
    assert rc == 2, err
    assert not any("Traceback" in ln for ln in err), err
    assert err[-1].startswith("fer-edge ") and ": error: " in err[-1] and bad in err[-1], err
    assert snapshot(w) == before


# --- csv layouts (from the hardening sweep) ------------------------------------------------

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
