"""The light runtime's public API: threads, odd inputs, the profile hook."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fer_edge.errors import ConfigError, FerEdgeError, InputError, ModelFileError, SpecError
from fer_edge.runtime import default_model_path, load_predictor

DEFAULT = default_model_path()
pytestmark = pytest.mark.skipif(DEFAULT is None, reason="this checkout has no packaged model")


@pytest.fixture(scope="module")
def model():
    return load_predictor(DEFAULT, num_threads=1)


def test_one_model_shared_by_eight_threads(model):
    """A loaded LiteRT model is safe to share: 8 threads predicting and analysing at once
    get exactly the answers of one thread."""
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (3, 48, 48), dtype=np.uint8) for _ in range(8)]
    frame = np.zeros((240, 320, 3), np.uint8)
    want = [model.predict(f) for f in faces]
    got, errors = [None] * 8, []

    def work(k):
        try:
            for _ in range(5):
                got[k] = model.predict(faces[k])
                model.analyze(frame)
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_grey_frame_with_a_channel_axis_is_grey(model):
    grey = np.full((120, 160), 90, np.uint8)
    assert model.analyze(grey[..., None]) == model.analyze(grey) == []


def test_one_pixel_frame_says_too_small(model):
    with pytest.raises(InputError, match="too small"):
        model.analyze(np.zeros((1, 1, 3), np.uint8))


def test_faces_of_different_sizes_are_one_line(model):
    with pytest.raises(InputError, match="different sizes"):
        model.predict([np.zeros((48, 48), np.uint8), np.zeros((40, 40), np.uint8)])


class _Shift:
    """A stand-in profile: moves all probability to class 0 when made for this model."""

    def __init__(self, sha):
        self.model_sha256 = sha

    def check_model(self, predictor):
        if predictor.model_sha256 != self.model_sha256:
            raise SpecError("profile made for another model")

    def adjust(self, probs, emb):
        assert emb.shape == (len(probs), 2048)
        out = np.zeros_like(probs)
        out[:, 0] = 1
        return out


def test_profile_hook_adjusts_every_pass_and_checks_the_model():
    m = load_predictor(DEFAULT, num_threads=1)
    faces = np.full((2, 48, 48), 128, np.uint8)
    with pytest.raises(SpecError):
        m.use_profile(_Shift("0" * 64))
    m.use_profile(_Shift(m.model_sha256))
    for flip in (None, True, False):
        assert (m.predict(faces, tta_flip=flip)[:, 0] == 1).all()
    m.use_profile(None)
    assert not (m.predict(faces)[:, 0] == 1).all()


def test_a_model_named_for_the_other_format_says_so(tmp_path):
    swapped = tmp_path / "model.onnx"
    swapped.write_bytes(DEFAULT.read_bytes())
    with pytest.raises(ModelFileError, match="content is a TFLite model.*rename it to .tflite"):
        load_predictor(swapped)
    fake = tmp_path / "model.tflite"
    fake.write_bytes(bytes([0x08, 0x08, 0x12, 0x07]) + b"tf2onnx" + b"\0" * 20)
    with pytest.raises(ModelFileError, match="looks like an ONNX model: rename it to .onnx"):
        load_predictor(fake)


def test_a_folder_as_model_says_it_is_a_folder(tmp_path):
    with pytest.raises(ModelFileError, match="is a folder.*export/"):
        load_predictor(tmp_path)


@pytest.mark.parametrize("detector", ["auto", "haar"])
def test_analyze_names_the_class_probability_and_the_detector_score_apart(model, detector):
    """``confidence`` is the top class's probability, ``detector_score`` the detector's
    (Face.score; 1.0 for Haar); the old ambiguous ``score`` raises a KeyError naming both."""
    import json

    import cv2

    cap = cv2.VideoCapture(str(DEFAULT.with_name("sample_astronaut.mp4")))
    frame = cap.read()[1]  # the packaged clip's first frame: one face
    cap.release()
    (face,) = model.analyze(frame, detector=detector)
    assert face["confidence"] == max(face["probs"].values()) == face["probs"][face["label"]]
    (found,) = model.finder(detector)(frame)
    assert face["detector_score"] == pytest.approx(found.score)
    assert (face["detector_score"] == 1.0) == (detector == "haar")
    with pytest.raises(KeyError, match="'score' was renamed: use 'confidence'.*'detector_score'"):
        face["score"]
    with pytest.raises(KeyError):
        face["nonsense"]
    assert json.loads(json.dumps(face))["confidence"] == face["confidence"]


# --- the Python API: faces and frames, good and bad (hardening sweep) -------------------------

API_BAD = [
    ("one-face-2d", lambda: np.zeros((48, 48), np.uint8), "face[None]"),
    ("rows-only", lambda: np.zeros((5, 48), np.uint8), "(N, h, w)"),
    ("floats-0-1", lambda: np.random.default_rng(0).random((2, 48, 48)), "0..1"),
    ("float32-0-1", lambda: np.full((1, 48, 48), 0.5, np.float32), "0..255"),
    ("nan", lambda: np.full((1, 48, 48), np.nan), "NaN"),
    ("inf", lambda: np.full((1, 48, 48), np.inf, np.float32), "NaN or infinite"),
    ("negative", lambda: np.full((1, 48, 48), -3.0), "0..255"),
    ("above-255", lambda: np.full((1, 48, 48), 300, np.int32), "0..255"),
    ("bool", lambda: np.ones((1, 48, 48), bool), "dtype bool"),
    ("strings", lambda: np.array([["a"]]), "dtype"),
    ("path", lambda: "face.png", "cv2.imread"),
    ("none", lambda: None, "grey faces"),
    ("colour-crops", lambda: np.zeros((2, 48, 48, 3), np.uint8), "grey"),
    ("5d", lambda: np.zeros((1, 1, 48, 48, 1), np.uint8), "(N, h, w)"),
    ("tiny-faces", lambda: np.zeros((2, 1, 1), np.uint8), "2x2"),
]
API_FRAMES_BAD = [
    ("none", None, "frame is None"),
    ("path", "group.jpg", "cv2.imread(path)"),
    ("empty", np.zeros((0, 0, 3), np.uint8), "empty"),
    ("float", np.zeros((20, 20, 3), np.float32), "uint8"),
    ("two-channels", np.zeros((20, 20, 2), np.uint8), "(H, W, 3)"),
    ("1d", np.zeros(10, np.uint8), "(H, W, 3)"),
]
API_GOOD = [
    ("uint8-batch", lambda: np.full((3, 48, 48), 128, np.uint8), (3, 7)),
    ("float-0-255", lambda: np.full((2, 48, 48), 128.0), (2, 7)),
    ("int64-0-255", lambda: np.full((1, 60, 50), 90, np.int64), (1, 7)),
    ("list-of-faces", lambda: [np.zeros((48, 48), np.uint8)] * 2, (2, 7)),
    ("channel-last-1", lambda: np.zeros((2, 48, 48, 1), np.uint8), (2, 7)),
    ("black-float", lambda: np.zeros((1, 48, 48), np.float32), (1, 7)),
    ("empty-batch", lambda: np.zeros((0, 48, 48), np.uint8), (0, 7)),
    ("large-faces", lambda: np.full((1, 200, 160), 40, np.uint8), (1, 7)),
]


@pytest.mark.parametrize("case", API_BAD, ids=[c[0] for c in API_BAD])
def test_predict_refuses_bad_faces(case, model):
    _, make, needle = case
    with pytest.raises(InputError, match=None) as e:
        model.predict(make())
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, FerEdgeError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("case", API_GOOD, ids=[c[0] for c in API_GOOD])
def test_predict_accepts_good_faces(case, model):
    _, make, shape = case
    p = model.predict(make())
    assert p.shape == shape and p.dtype == np.float32
    assert np.allclose(p.sum(1), 1, atol=0.05)


def test_float_faces_in_0_255_match_uint8(model):
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48)).astype(np.uint8)
    np.testing.assert_allclose(model.predict(faces), model.predict(faces.astype(np.float64)))


@pytest.mark.parametrize("case", API_FRAMES_BAD, ids=[c[0] for c in API_FRAMES_BAD])
def test_analyze_refuses_bad_frames(case, model):
    _, frame, needle = case
    with pytest.raises(InputError) as e:
        model.analyze(frame)
    assert needle in str(e.value)


def test_analyze_and_predict_inputs_edges(model):
    assert model.analyze(np.zeros((120, 160, 3), np.uint8)) == []
    assert model.analyze(np.zeros((120, 160), np.uint8)) == []
    with pytest.raises(InputError, match="NaN"):
        model.predict_inputs(np.full((1, 75, 75, 3), np.nan, np.float32))
    with pytest.raises(InputError, match="does not match"):
        model.predict_inputs(np.zeros((1, 32, 32, 3), np.float32))


@pytest.mark.parametrize("path", [123, ["a.tflite"], b"\x00"])
def test_load_refuses_a_path_that_is_not_one(path):
    with pytest.raises(InputError, match="pass a .tflite/.onnx file path"):
        load_predictor(path)


@pytest.mark.parametrize("threads", [-1, 100000, 2.5, True, "2"])
def test_load_refuses_bad_thread_counts(threads, ws):
    with pytest.raises(ConfigError, match="1..256"):
        load_predictor(ws / "model.tflite", num_threads=threads)
