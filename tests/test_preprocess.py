"""The one preprocessing path: crops, resize, normalisation; train side == runtime side."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_spec

from fer_edge.preprocess import (
    crop_box,
    crop_face,
    frame_faces,
    normalize,
    resize_faces,
    to_model_input,
)
from fer_edge.spec import CropRule, ModelSpec


def test_crop_box_square_scale_shift():
    assert crop_box((10, 20, 40, 60), CropRule()) == (0, 20, 60, 60)
    x, y, w, h = crop_box((0, 0, 100, 100), CropRule(scale=1.2, shift_y=0.1))
    assert (w, h) == (120, 120) and (x, y) == (-10, 2)


def test_crop_face_pads_outside_frame_by_replication():
    gray = np.arange(100, dtype=np.uint8).reshape(10, 10)
    crop = crop_face(gray, (-2, -2, 6, 6), CropRule(square=False))
    assert crop.shape == (6, 6)
    assert crop[0, 0] == gray[0, 0] and crop[-1, -1] == gray[3, 3]


def test_to_model_input_shape_range():
    spec = make_spec(input_size=75)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    x = to_model_input(faces, spec)
    assert x.shape == (3, 75, 75, 3) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert np.array_equal(x[..., 0], x[..., 2])
    # a big webcam crop is first brought to the 48x48 training resolution
    big = np.full((2, 160, 160), 200, np.uint8)
    assert np.allclose(to_model_input(big, spec), 200 / 127.5 - 1, atol=1e-5)


def test_frame_faces_bgr():
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[30:90, 50:110] = (0, 0, 255)  # red square, BGR
    faces = frame_faces(frame, [(50, 30, 60, 60)], make_spec())
    assert faces.shape == (1, 48, 48) and faces.dtype == np.uint8
    assert abs(int(faces[0, 24, 24]) - 76) <= 1  # BT.601 grey of pure red
    assert frame_faces(frame, [], make_spec()).shape == (0, 48, 48)


@pytest.mark.tf
def test_tf_pipeline_equals_numpy_preprocessing():
    from fer_edge.train.pipeline import make_dataset

    spec = make_spec(input_size=75)
    faces = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    ds = make_dataset(faces, np.arange(5) % 7, spec, 8, training=False)
    x_tf = next(iter(ds))[0].numpy()
    np.testing.assert_allclose(x_tf, normalize(resize_faces(faces, 75), spec), atol=1e-6)
    np.testing.assert_allclose(x_tf, to_model_input(faces, spec), atol=1e-6)


def test_spec_round_trip(tmp_path):
    spec = make_spec(input_size=96, tta_flip=True, extra={"run": "x"})
    spec.write(tmp_path / "spec.json")
    assert ModelSpec.read(tmp_path / "spec.json") == spec
