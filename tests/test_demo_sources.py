"""Demo sources (issue 34): photos are independent, unreadable photos are skipped and counted,
photos of different sizes are all saved, a folder given as --video/--model is named as such."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_sweep import assert_refused, run_cli
from conftest import make_spec

from fer_edge.demo.config import DemoConfig
from fer_edge.demo.loop import run_demo
from fer_edge.demo.sources import SAMPLE_CLIP
from fer_edge.detect import Detection
from fer_edge.runtime import default_model_path

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
needs_default = pytest.mark.skipif(default_model_path() is None,
                                   reason="this checkout has no packaged model")


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _sample_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


class PerPhotoPredictor:
    """A different one-hot class for each call, so a label carried over from an earlier photo
    (smoothing, hysteresis, a track kept alive) would show."""

    def __init__(self):
        self.spec, self.calls = make_spec(), 0

    def predict(self, faces, tta_flip=None):
        out = np.full((len(faces), 7), 0.01, np.float32)
        out[:, self.calls % 7] = 0.94
        self.calls += 1
        return out


class BoxPerPhoto:
    """Photo k has one face at a box of its own (or none for the photos in ``empty``)."""

    name = "scripted"

    def __init__(self, empty=()):
        self.calls, self.empty = 0, set(empty)

    def detect_faces(self, frame):
        k = self.calls
        self.calls += 1
        return [] if k in self.empty else [Detection((20.0 + 30 * k, 40.0, 120.0, 120.0))]


def _photo_folder(tmp_path: Path, n: int, sizes=None) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    frame = _sample_frame()
    for k in range(n):
        img = frame if sizes is None else cv2.resize(frame, sizes[k % len(sizes)])
        cv2.imwrite(str(folder / f"p{k}.png"), img)
    return folder


def test_photos_are_independent_no_tracking_or_smoothing(tmp_path):
    folder = _photo_folder(tmp_path, 4)
    log = tmp_path / "faces.csv"
    pred = PerPhotoPredictor()
    stats = run_demo(DemoConfig(image=str(folder), headless=True, log=str(log),
                                detect_every=4, classify_every=5, keep_alive=2),
                     predictor=pred, detector=BoxPerPhoto(empty={1}))
    rows = _rows(log)
    assert stats.frames == 4 and pred.calls == 3  # every photo with a face classified once
    # photo 1 has no face: nothing is kept alive from photo 0 and nothing logged for it
    assert [r["source"] for r in rows] == ["p0.png", "p2.png", "p3.png"]
    assert [int(r["x"]) for r in rows] == [20, 80, 110]  # each photo its own box
    # the label is each photo's own (no EMA, no hysteresis from the photo before)
    labels = make_spec().labels
    assert [r["label"] for r in rows] == [labels[0], labels[1], labels[2]]
    assert all(r["label"] == r["raw_label"] and r["face_id"] == "1" for r in rows)


def test_several_image_files_on_the_command_line(tmp_path, capsys):
    folder = _photo_folder(tmp_path, 3)
    log = tmp_path / "l.csv"
    files = sorted(folder.glob("*.png"))
    rc, err, out = run_cli(["demo", "--headless", "--log", log, "--image", files[2], files[0]],
                           capsys)
    assert rc == 0, err
    assert "2 photos" in out
    assert [r["source"] for r in _rows(log)] == ["p2.png", "p0.png"]


@pytest.mark.skipif(not (REAL / "obama_and_biden.jpg").is_file(),
                    reason=f"real photos not found at {REAL}")
@needs_default
def test_real_photo_folder_every_face_its_own_box(tmp_path, capsys):
    """On ../shared/data/real/ (11 photos, one face each, two people in obama_and_biden.jpg),
    every photo is logged under its own name, with a box inside that photo and on its face;
    the old loop logged three photos with another photo's box and missed two faces."""
    log = tmp_path / "real.csv"
    rc, err, out = run_cli(["demo", "--image", REAL, "--headless", "--log", log], capsys)
    assert rc == 0, err
    rows = _rows(log)
    photos = sorted(p.name for p in REAL.iterdir() if p.suffix in (".jpg", ".png"))
    by_photo = {p: [r for r in rows if r["source"] == p] for p in photos}
    assert all(by_photo[p] for p in photos), {p: len(v) for p, v in by_photo.items()}
    assert len(by_photo["obama_and_biden.jpg"]) >= 2
    for p, got in by_photo.items():
        h, w = cv2.imread(str(REAL / p)).shape[:2]
        boxes = {(int(r["x"]), int(r["y"]), int(r["w"])) for r in got}
        assert len(boxes) == len(got), p  # no two faces of a photo share a box
        for r in got:
            x, y, bw = int(r["x"]), int(r["y"]), int(r["w"])
            assert 0 <= x + bw / 2 < w and 0 <= y + bw / 2 < h, (p, r)
            assert r["label"] == r["raw_label"], (p, r)  # nothing smoothed
    # the four resolutions of one photo: the same face at the same relative place
    rel = [(int(by_photo[f"obama-{k}.jpg"][0]["x"]) / cv2.imread(
        str(REAL / f"obama-{k}.jpg")).shape[1]) for k in ("240p", "480p", "720p", "1080p")]
    assert max(rel) - min(rel) < 0.03, rel


def test_unreadable_photo_in_a_folder_is_skipped_with_a_warning(tmp_path, capsys):
    folder = _photo_folder(tmp_path, 2)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    log = tmp_path / "l.csv"
    stats = run_demo(DemoConfig(image=str(folder), headless=True, log=str(log)),
                     predictor=PerPhotoPredictor(), detector=BoxPerPhoto())
    assert stats.frames == 2 and stats.skipped == 1
    assert [r["source"] for r in _rows(log)] == ["p0.png", "p1.png"]
    assert "skipped" in capsys.readouterr().err and "broken.jpg" not in {
        r["source"] for r in _rows(log)}


def test_unreadable_photo_summary_counts_it(tmp_path, capsys):
    folder = _photo_folder(tmp_path, 1)
    (folder / "broken.png").write_text("no image")
    rc, err, out = run_cli(["demo", "--image", folder, "--headless", "--max-faces", "1"],
                           capsys)
    assert rc == 0, err
    assert any("broken.png" in ln and "skipped" in ln for ln in err), err
    assert "skipped 1 unreadable image" in out


def test_unreadable_single_photo_with_log_writes_nothing(tmp_path, capsys):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "bad.jpg").write_text("not an image")
    args = ["demo", "--image", ws / "bad.jpg", "--headless", "--log", ws / "faces.csv"]
    assert_refused(args, capsys, ws, "bad.jpg", "cannot be read as an image", ".jpg or .png")
    assert_refused(args, capsys, ws, "bad.jpg")  # the rerun is not refused as "exists"


def test_folder_of_unreadable_photos_writes_nothing(tmp_path, capsys):
    ws = tmp_path / "ws"
    (ws / "photos").mkdir(parents=True)
    for k in range(2):
        (ws / "photos" / f"{k}.png").write_text("no image")
    assert_refused(["demo", "--image", ws / "photos", "--headless", "--log", ws / "f.csv",
                    "--save", ws / "f.mp4"], capsys, ws, "none of the 2 images", ".png")


def test_photos_of_different_sizes_all_saved_letterboxed(tmp_path):
    folder = _photo_folder(tmp_path, 3, sizes=[(640, 480), (300, 500), (1000, 400)])
    out = tmp_path / "out.mp4"
    stats = run_demo(DemoConfig(image=str(folder), headless=True, save=str(out)),
                     predictor=PerPhotoPredictor(), detector=BoxPerPhoto())
    assert stats.frames == 3 and stats.resized == 2
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == 3 and all(f.shape == (480, 640, 3) for f in frames)
    # the 300x500 photo is letterboxed: black bars left and right, picture in the middle
    assert frames[1][:, :60].max() < 40 and frames[1][:, 300:340].mean() > 40


@pytest.mark.parametrize("make, flag, words", [
    ("run", "--model", ["is a folder", "export/", "fer_x_int8.tflite"]),
    ("run", "--video", ["is a folder", "training run", "export/"]),
    ("photos", "--video", ["is a folder", "--image"]),
    ("builds", "--model", ["is a folder", "fer_x_int8.tflite"]),
    ("empty", "--model", ["is a folder", ".tflite/.onnx"]),
])
def test_folder_given_as_model_or_video(tmp_path, capsys, make, flag, words):
    ws = tmp_path / "ws"
    d = ws / make
    d.mkdir(parents=True)
    if make == "run":
        (d / "export").mkdir()
        (d / "spec.json").write_text("{}")
        (d / "export" / "fer_x_int8.tflite").write_bytes(b"x")
    elif make == "builds":
        (d / "fer_x_fp32.onnx").write_bytes(b"x")
        (d / "fer_x_int8.tflite").write_bytes(b"x")
    elif make == "photos":
        cv2.imwrite(str(d / "a.png"), np.zeros((8, 8, 3), np.uint8))
    args = ["demo", "--headless", flag, d] + (["--video", "sample"] if flag == "--model" else [])
    assert_refused(args, capsys, ws, *words)


def test_missing_image_path_named(tmp_path, capsys):
    assert_refused(["demo", "--headless", "--image", tmp_path / "nope.png"], capsys, tmp_path,
                   "nope.png", "no image found", "check the path")


def test_several_images_from_a_recipe(tmp_path, capsys):
    folder = _photo_folder(tmp_path, 2)
    recipe = tmp_path / "photos.toml"
    recipe.write_text(f'[demo]\nimage = ["{folder / "p1.png"}", "{folder / "p0.png"}"]\n'
                      f'headless = true\nlog = "{tmp_path / "l.csv"}"\n')
    rc, err, out = run_cli(["demo", "--config", recipe], capsys)
    assert rc == 0, err
    assert [r["source"] for r in _rows(tmp_path / "l.csv")] == ["p1.png", "p0.png"]


@pytest.mark.parametrize("value", ["[]", "[1, 2]"])
def test_recipe_image_list_must_hold_paths(tmp_path, capsys, value):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "r.toml").write_text(f"[demo]\nimage = {value}\n")
    assert_refused(["demo", "--config", ws / "r.toml", "--headless"], capsys, ws,
                   f"image = {value}", "non-empty list")
