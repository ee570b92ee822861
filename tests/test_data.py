"""FER-2013 readers (csv, npz, Kaggle folders, class folders), bad inputs, imbalance math."""

from __future__ import annotations

import numpy as np
import pytest

from fer_edge.data import load_dataset
from fer_edge.data.balance import class_weights, oversample_indices
from fer_edge.data.readers import stratified_split
from fer_edge.data.synthetic import write_csv, write_folders, write_npz
from fer_edge.errors import ConfigError, DataError


def test_csv_splits(tmp_path):
    ds = load_dataset(write_csv(tmp_path / "fer2013.csv", 21, 14, 7))
    assert {k: len(v) for k, v in ds.labels.items()} == {"train": 21, "val": 14, "test": 7}
    assert ds.images["train"].shape == (21, 48, 48) and ds.images["train"].dtype == np.uint8
    assert ds.labels["test"].max() <= 6


def test_npz_matches_csv(tmp_path):
    a = load_dataset(write_npz(tmp_path / "d.npz", 14, 7, 7, seed=3))
    b = load_dataset(write_csv(tmp_path / "d.csv", 14, 7, 7, seed=3))
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(a.images[s], b.images[s])
        np.testing.assert_array_equal(a.labels[s], b.labels[s])


def test_kaggle_folders_with_prefixes(tmp_path):
    ds = load_dataset(write_folders(tmp_path / "k", 28, 14))
    assert len(ds.labels["train"]) == 28
    assert len(ds.labels["val"]) == 7 and len(ds.labels["test"]) == 7  # PublicTest_/PrivateTest_


def test_kaggle_folders_without_prefixes_carve_val(tmp_path):
    ds = load_dataset(write_folders(tmp_path / "k", 70, 14, kaggle_names=False), val_fraction=0.2)
    assert len(ds.labels["test"]) == 14
    assert len(ds.labels["val"]) == 14 and len(ds.labels["train"]) == 56
    assert set(np.unique(ds.labels["val"])) == set(range(7))  # stratified
    assert any("carved" in n for n in ds.notes)


def test_class_folders_pool(tmp_path):
    root = write_folders(tmp_path / "k", 70, 7)
    ds = load_dataset(root / "train")
    assert sum(len(v) for v in ds.labels.values()) == 70


def _csv(tmp_path, rows):
    p = tmp_path / "fer2013.csv"
    good = " ".join(["7"] * 2304)
    body = [f"{r}" if "{good}" not in r else r.format(good=good) for r in rows]
    p.write_text("emotion,pixels,Usage\n" + "\n".join(body) + "\n")
    return p


@pytest.mark.parametrize("row, problem", [
    ("3,{good}", "expected 3 fields"),
    ("x,{good},Training", "not an integer"),
    ("9,{good},Training", "outside 0..6"),
    ("3,1 2 3,Training", "3 pixel values, expected 2304"),
    ("3,{good},Validation", "Usage 'Validation'"),
])
def test_csv_bad_rows_name_line_and_problem(tmp_path, row, problem):
    rows = ["0,{good},Training", "1,{good},PublicTest", row, "2,{good},PrivateTest"]
    with pytest.raises(DataError) as e:
        load_dataset(_csv(tmp_path, rows))
    msg = str(e.value)
    assert "line 4" in msg and problem in msg and "--skip-bad" in msg
    assert "\n" not in msg


def test_csv_skip_bad_counts(tmp_path):
    rows = ["0,{good},Training", "1,{good},PublicTest", "3,1 2 3,Training", "x,{good},Training",
            "2,{good},PrivateTest"]
    ds = load_dataset(_csv(tmp_path, rows), skip_bad=True)
    assert ds.skipped == 2 and len(ds.labels["train"]) == 1


def test_empty_split_is_an_error(tmp_path):
    with pytest.raises(DataError, match="test split is empty"):
        load_dataset(_csv(tmp_path, ["0,{good},Training", "1,{good},PublicTest"]))


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope.csv")


def test_unknown_class_folder(tmp_path):
    root = write_folders(tmp_path / "k", 14, 7)
    (root / "train" / "contempt").mkdir()
    with pytest.raises(DataError, match="unknown class folder 'contempt'"):
        load_dataset(root)


def test_unreadable_image(tmp_path):
    root = write_folders(tmp_path / "k", 14, 14)
    (root / "train" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg: cannot be read"):
        load_dataset(root)
    assert load_dataset(root, skip_bad=True).skipped == 1


def test_npz_wrong_layout(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, images=np.zeros((3, 10, 10), np.uint8), labels=np.zeros(3), usage=np.zeros(3))
    with pytest.raises(DataError, match=r"expected \(N, 48, 48\)"):
        load_dataset(p)


def test_real_fer2013_counts(fer_npz):
    ds = load_dataset(fer_npz)
    assert ds.counts("train").tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert len(ds.labels["val"]) == 3589 and len(ds.labels["test"]) == 3589


def test_class_weights_math():
    counts = np.array([100, 10, 100, 400, 100, 100, 100])
    for m in ("inverse", "sqrt_inverse", "effective"):
        w = class_weights(counts, m)
        assert np.isclose((w * counts).sum(), counts.sum())  # mean sample weight stays 1
        assert w[1] == w.max() and w[3] == w.min()
    w = class_weights(counts, "inverse")
    assert np.isclose(w[1] / w[3], 40.0)
    assert np.allclose(class_weights(counts, "sqrt_inverse")[1] / class_weights(
        counts, "sqrt_inverse")[3], np.sqrt(40))
    # effective number -> inverse frequency as beta -> 1, -> uniform as beta -> 0
    assert np.allclose(class_weights(counts, "effective", 0.999999), w, rtol=1e-2)
    assert np.allclose(class_weights(counts, "effective", 1e-6), 1.0)
    assert np.all(class_weights(counts, "none") == 1)
    with pytest.raises(ConfigError):
        class_weights(counts, "bogus")


def test_oversample_indices_keep_all_and_balance():
    y = np.array([0] * 100 + [1] * 4 + [2] * 25)
    idx = oversample_indices(y, seed=0, power=0.0)
    assert set(range(len(y))) <= set(idx.tolist())
    assert np.bincount(y[idx]).tolist() == [100, 100, 100]
    soft = np.bincount(y[oversample_indices(y, seed=0, power=0.5)])
    assert soft[0] == 100 and soft[1] == 20 and soft[2] == 50


def test_stratified_split_is_seeded_and_disjoint():
    y = np.repeat(np.arange(7), 20)
    a1, b1 = stratified_split(y, 0.25, 1)
    a2, b2 = stratified_split(y, 0.25, 1)
    assert np.array_equal(b1, b2) and not set(a1) & set(b1)
    assert np.bincount(y[b1]).tolist() == [5] * 7
