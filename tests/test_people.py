"""fer_edge.data.people and fer_edge.evaluate_people: photos of people scored through the whole
pipeline; and the tfeid_dev rows of benchmarks/generalization.py (on a handful of photos)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT

from fer_edge.data.people import PersonPhoto, scan_people
from fer_edge.errors import DataError
from fer_edge.evaluate_people import people_report, photo_classes, predict_photos
from fer_edge.spec import FER2013_LABELS

TFEID = ROOT.parent / "shared" / "data" / "tfeid_dev"
needs_tfeid = pytest.mark.skipif(not TFEID.is_dir(), reason=f"tfeid_dev not found at {TFEID}")


def _jpg(path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((32, 32, 3), value, np.uint8))


def test_tfeid_names_give_person_take_and_label_and_unlabelled_files_are_counted(tmp_path):
    for name in ("0111b01.jpg", "0121e03.jpg", "0231f02.jpg", "0201a05.jpg",
                 "1201002.jpg", "notes.jpg"):
        _jpg(tmp_path / name)
    (tmp_path / "README.md").write_text("not a photo")
    photos, skipped = scan_people(tmp_path)
    assert [(p.person, p.take, p.label) for p in photos] == [
        ("01", "1", "happy"), ("01", "2", "disgust"), ("02", "0", "neutral"),
        ("02", "3", "fear")]
    assert skipped == 2  # 1201002.jpg (no expression letter) and notes.jpg


def test_person_folders_accept_the_class_synonyms_and_refuse_unknown_classes(tmp_path):
    _jpg(tmp_path / "ann" / "Happiness" / "1.jpg")
    _jpg(tmp_path / "ann" / "anger" / "2.png")
    _jpg(tmp_path / "bob" / "sad" / "3.jpg")
    photos, skipped = scan_people(tmp_path)
    assert [(p.person, p.label) for p in photos] == [("ann", "happy"), ("ann", "angry"),
                                                      ("bob", "sad")]
    assert skipped == 0
    _jpg(tmp_path / "bob" / "contempt" / "4.jpg")
    with pytest.raises(DataError, match="contempt"):
        scan_people(tmp_path)


def test_a_missing_or_empty_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        scan_people(tmp_path / "nope")
    with pytest.raises(DataError, match="no labelled photo"):
        scan_people(tmp_path)


def test_people_report_counts_a_missed_face_as_wrong_and_weighs_people_equally(tmp_path):
    labels = FER2013_LABELS
    photos = [PersonPhoto(tmp_path / f"{i}.jpg", person, lab) for i, (person, lab) in
              enumerate([("a", "happy"), ("a", "happy"), ("a", "sad"), ("a", "sad"),
                         ("b", "happy"), ("b", "sad")])]
    answer = ["happy", "sad", "sad", "sad", "happy", None]  # None: no face found
    probs = np.zeros((6, 7), np.float32)
    for i, a in enumerate(answer):
        if a:
            probs[i, labels.index(a)] = 1.0
    found = np.array([a is not None for a in answer])
    rep = people_report(photos, probs, found, labels)
    assert rep["all"]["accuracy"] == pytest.approx(4 / 6) and rep["all"]["missed"] == 1
    assert rep["found"] == pytest.approx(5 / 6)
    per = {c["label"]: c["recall"] for c in rep["all"]["per_class"]}
    assert per["happy"] == pytest.approx(2 / 3) and per["sad"] == pytest.approx(2 / 3)
    assert rep["per_person"]["a"]["accuracy"] == pytest.approx(3 / 4)
    assert rep["per_person"]["b"]["accuracy"] == pytest.approx(1 / 2)
    assert rep["per_person"]["b"]["found"] == pytest.approx(1 / 2)
    assert rep["person_mean"]["accuracy"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert rep["person_mean"]["recall"] == {"happy": pytest.approx(0.75),
                                            "sad": pytest.approx(0.5)}
    with pytest.raises(DataError, match="calm"):
        photo_classes([PersonPhoto(tmp_path / "x.jpg", "a", "calm")], labels)


@needs_tfeid
def test_photos_go_through_the_pipeline_a_user_runs_and_a_missed_face_is_wrong(tmp_path):
    import fer_edge

    real, _ = scan_people(TFEID)
    shots = [p for p in real if p.label == "happy"][:2]
    (tmp_path / "ann" / "happy").mkdir(parents=True)
    for k, p in enumerate(shots):
        shutil.copy(p.path, tmp_path / "ann" / "happy" / f"{k}.jpg")
    _jpg(tmp_path / "ann" / "happy" / "z_blank.jpg")  # no face in it
    photos, _ = scan_people(tmp_path)
    model = fer_edge.load()
    probs, found = predict_photos(model, photos)
    assert found.tolist() == [True, True, False]
    for p, row in zip(photos[:2], probs):
        faces = model.analyze(cv2.imread(str(p.path)))
        largest = max(faces, key=lambda f: f["box"][2] * f["box"][3])
        np.testing.assert_allclose(row, [largest["probs"][k] for k in model.spec.labels])
    assert not probs[2].any()
    rep = people_report(photos, probs, found, model.spec.labels)
    assert rep["all"]["n"] == 3 and rep["all"]["missed"] == 1
    assert rep["all"]["accuracy"] <= 2 / 3  # the blank photo is wrong whatever the rest


@needs_tfeid
def test_generalization_writes_the_tfeid_rows_on_a_handful_of_photos(tmp_path):
    out = tmp_path / "g.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generalization.py"),
                        "--sets", "tfeid", "--tfeid-per-person", "1", "--out", str(out),
                        "--no-tables"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    with out.open(newline="") as f:
        rows = {row["set"]: row for row in csv.DictReader(f)}
    photos, _ = scan_people(TFEID)
    people = sorted({p.person for p in photos})
    assert set(rows) == {"tfeid_dev-photo", "tfeid_dev-person"} | {
        f"tfeid_dev-person-{p}" for p in people}
    whole = rows["tfeid_dev-photo"]
    assert int(whole["n"]) == len(people) and whole["build"] == "fer_default_int8.tflite"
    assert int(rows["tfeid_dev-person"]["subjects"]) == len(people)
    # one photo each: the mean over people is the accuracy over photos
    assert float(rows["tfeid_dev-person"]["accuracy"]) == pytest.approx(
        float(whole["accuracy"]), abs=0.01)
    singles = [float(rows[f"tfeid_dev-person-{p}"]["accuracy"]) for p in people]
    assert set(singles) <= {0.0, 100.0}
    assert float(whole["accuracy"]) == pytest.approx(np.mean(singles), abs=0.01)


@needs_tfeid
def test_generalization_exports_the_photos_for_a_peer_and_scores_its_answers(tmp_path):
    """--export-faces lists the tfeid_dev photos in scoring order; a peer's probabilities on
    them (here: always right on found photos, one photo not found) get the same rows."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = str(ROOT / "benchmarks" / "generalization.py")
    common = ["--sets", "tfeid", "--tfeid-per-person", "1"]
    faces = tmp_path / "faces.npz"
    r = subprocess.run([sys.executable, script, *common, "--export-faces", str(faces)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    paths = [Path(p) for p in np.load(faces)["tfeid_paths"]]
    photos, _ = scan_people(TFEID)
    firsts = {}
    for ph in photos:
        firsts.setdefault(ph.person, ph)
    assert paths == [ph.path for ph in firsts.values()]
    labels = [ph.label for ph in firsts.values()]
    probs = np.eye(7, dtype=np.float32)[[FER2013_LABELS.index(lab) for lab in labels]]
    found = np.ones(len(paths), bool)
    found[0] = False
    peer = tmp_path / "peer.npz"
    np.savez(peer, name=np.array("peer"), tfeid=probs, tfeid_found=found)
    out = tmp_path / "g.csv"
    r = subprocess.run([sys.executable, script, *common, "--peer-probs", str(peer), "--out",
                        str(out), "--no-tables"], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    with out.open(newline="") as f:
        rows = {(row["build"], row["set"]): row for row in csv.DictReader(f)}
    whole = rows[("peer", "tfeid_dev-photo")]
    assert float(whole["accuracy"]) == pytest.approx(100 * (len(paths) - 1) / len(paths),
                                                      abs=0.01)


def test_generalization_refuses_a_missing_tfeid_folder_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generalization.py"),
                        "--sets", "tfeid", "--tfeid", str(tmp_path / "nope"), "--out",
                        str(tmp_path / "g.csv"), "--no-tables"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 2 and "--tfeid" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "g.csv").exists()


@needs_tfeid
def test_evaluate_cli_scores_a_folder_of_people_per_person(tmp_path, capsys):
    import json

    from fer_edge.cli import main

    real, _ = scan_people(TFEID)
    for person, label in (("ann", "happy"), ("bob", "neutral")):
        shot = next(p for p in real if p.label == label and p.person == "07")
        (tmp_path / "people" / person / label).mkdir(parents=True)
        shutil.copy(shot.path, tmp_path / "people" / person / label / "1.jpg")
    _jpg(tmp_path / "people" / "bob" / "sad" / "blank.jpg")  # no face: wrong
    out = tmp_path / "rep"
    assert main(["evaluate", str(ROOT / "fer_edge" / "assets" / "fer_default_int8.tflite"),
                 "--people", str(tmp_path / "people"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| ann | 1 |" in text and "| bob | 2 |" in text
    rep = json.loads((out / "report.json").read_text())["builds"]["fer_default_int8.tflite"]
    assert rep["all"]["n"] == 3 and rep["all"]["missed"] == 1
    assert rep["found"] == pytest.approx(2 / 3)
    assert rep["per_person"]["bob"]["found"] == pytest.approx(1 / 2)
    assert "| bob | 2 |" in (out / "report.md").read_text()


@pytest.mark.parametrize("extra", [[], ["--data", "synthetic", "--people", "x"]])
def test_evaluate_cli_needs_data_or_people_not_both(extra, capsys):
    from fer_edge.cli import main

    assert main(["evaluate", "m.tflite", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data" in err[0] and "--people" in err[0]


# -- the second hardening sweep (issue 34) ---------------------------------------------------
def test_one_persons_expression_folders_are_refused_with_the_layout_to_use(tmp_path):
    _jpg(tmp_path / "me" / "happy" / "1.jpg")
    _jpg(tmp_path / "me" / "sad" / "2.jpg")
    with pytest.raises(DataError, match=r"are expressions: that is one person's photos.*"
                                        r"--people PEOPLE"):
        scan_people(tmp_path / "me")
    assert len(scan_people(tmp_path)[0]) == 2  # the folder above is the right one


def test_a_file_is_named_as_a_file_and_loose_photos_of_a_person_are_counted(tmp_path):
    _jpg(tmp_path / "a.jpg")
    with pytest.raises(DataError, match="is a file, not a folder"):
        scan_people(tmp_path / "a.jpg")
    _jpg(tmp_path / "people" / "ann" / "happy" / "1.jpg")
    _jpg(tmp_path / "people" / "bob" / "0121b01.jpg")  # no <class>/ folder: not scored
    photos, skipped = scan_people(tmp_path / "people")
    assert [p.person for p in photos] == ["ann"] and skipped == 1


def test_evaluate_people_on_one_persons_folder_exit_2(tmp_path, capsys):
    from cli_sweep import assert_refused

    _jpg(tmp_path / "me" / "happy" / "1.jpg")
    model = ROOT / "fer_edge" / "assets" / "fer_default_int8.tflite"
    assert_refused(["evaluate", model, "--people", tmp_path / "me"], capsys, tmp_path,
                   "one person's photos", "--people PEOPLE")
