"""Crop-rule calibration (``python -m fer_edge.detect.calibrate``): the arithmetic on a stand-in
detector whose boxes are known, the file it writes, the refusals, and (with FER-2013) the rules
it measures for BlazeFace against the shipped ones."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fer_edge.data.paste import PastedFace
from fer_edge.data.synthetic import write_npz
from fer_edge.detect import calibrate as cal
from fer_edge.detect import calibrated_crops
from fer_edge.detect.detection import Detection, FaceDetector
from fer_edge.errors import DataError


class Offset(FaceDetector):
    """Finds every pasted face (100x100 at (100, 100)) as a box 0.8 of its side, centred
    0.05 of a side above the face's centre, eyes tilted by ``tilt`` pixels."""

    name = "offset"

    def __init__(self, tilt: float = 0.0, found: bool = True):
        self.tilt, self.found = tilt, found

    def detect_faces(self, frame):
        if not self.found:
            return []
        kps = np.float32([[130, 130], [170, 130 + self.tilt]])
        return [Detection((110.0, 105.0, 80.0, 80.0), 0.9, kps)]


@pytest.fixture
def pasted(monkeypatch):
    def frames(faces, seed=0, sides=(30, 300), max_angle=30.0):
        for i in range(len(faces)):
            yield PastedFace(np.zeros((480, 640, 3), np.uint8), (100.0, 100.0, 100.0, 100.0),
                             0.0, i)

    monkeypatch.setattr(cal, "pasted_frames", frames)


def test_measure_turns_the_box_offset_into_the_crop_rule(pasted):
    faces = np.zeros((10, 48, 48), np.uint8)
    r = cal.measure("blazeface-full", faces, 0, Offset())
    assert r["crop"] == {"square": True, "scale": 1.25, "shift_y": 0.05, "source_size": 48,
                         "align": True}
    assert r["spread"]["size"] == [0.8, 0.0] and r["spread"]["dy"] == [-0.05, 0.0]
    assert r["spread"]["dx"] == [0.0, 0.0] and r["found"] == r["tried"] == 10
    tilted = cal.measure("blazeface-full", faces, 0, Offset(tilt=40.0))
    assert tilted["spread"]["angle_deg"][0] == pytest.approx(45.0, abs=0.01)
    # no eyes for Haar: not aligned, no angle
    assert cal.measure("haar", faces, 0, Offset(tilt=40.0))["spread"]["angle_deg"] == [0, 0]
    with pytest.raises(DataError, match="found none of the 10 pasted faces"):
        cal.measure("haar", faces, 0, Offset(found=False))


def test_calibrate_writes_the_file_and_keeps_other_detectors(pasted, monkeypatch, tmp_path):
    monkeypatch.setattr(cal, "build_detector", lambda name: Offset())
    data = write_npz(tmp_path / "fer.npz", n_train=30, n_val=2, n_test=2)
    out, rows = tmp_path / "crops.json", tmp_path / "rows.csv"
    kept = {"crop": {"square": True, "scale": 1.0, "shift_y": 0.0, "source_size": 48,
                     "align": False}, "spread": {"n": 1, "dx": [0, 0], "dy": [0, 0],
                                                 "size": [1, 0]}}
    out.write_text(json.dumps({"detectors": {"haar": kept}}))
    cal.atomic_write_csv(rows, [{"detector": "haar", "faces": 1}])
    res = cal.calibrate(data, n=20, detectors=("blazeface-full",), out=out, csv_path=rows,
                        echo=lambda row: None)
    written = json.loads(out.read_text())
    assert written == res and written["detectors"]["haar"] == kept
    assert written["detectors"]["blazeface-full"]["crop"]["scale"] == 1.25
    assert written["n"] == 20 and written["script"] == "fer_edge.detect.calibrate"
    with rows.open() as f:
        assert [r["detector"] for r in csv.DictReader(f)] == ["haar", "blazeface-full"]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(pasted, tmp_path, capsys):
    data = write_npz(tmp_path / "fer.npz", n_train=30, n_val=2, n_test=2)
    out = tmp_path / "crops.json"
    cases = [
        (["--data", str(tmp_path / "none.npz")], "no such file"),
        (["--data", str(data), "--n", "31"], "--n 31: use 1 to 30"),
        (["--data", str(data), "--detectors", "blazeface-huge"], "unknown face detector"),
        (["--data", str(tmp_path)], "a folder, not a file"),
    ]
    for argv, words in cases:
        assert cal.main(argv + ["--out", str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
        assert not out.exists()
    out.write_text("not json")
    assert cal.main(["--data", str(data), "--n", "5", "--out", str(out)]) == 2
    assert "not a crop calibration file" in capsys.readouterr().err
    assert out.read_text() == "not json"


def test_blazeface_full_rule_matches_the_shipped_one(fer_npz, tmp_path):
    """On 200 Training faces (the shipped rule used 2,000) BlazeFace full's crop scale and
    shift are those of ``face_crops.json`` within a few hundredths."""
    res = cal.calibrate(fer_npz, n=200, detectors=("blazeface-full",),
                        out=tmp_path / "crops.json", echo=lambda row: None)
    got, shipped = res["detectors"]["blazeface-full"]["crop"], calibrated_crops()["blazeface-full"]
    assert got["align"] and abs(got["scale"] - shipped.scale) < 0.04
    assert abs(got["shift_y"] - shipped.shift_y) < 0.03
