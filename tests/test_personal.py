"""Per-person calibration: embeddings, the method, profile files (fer_edge.personal)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import fer_edge
from fer_edge.cli import main
from fer_edge.errors import ProfileError
from fer_edge.personal.method import (
    SHARE,
    Correction,
    features,
    fit_correction,
    log_probs,
    shot_variants,
    softmax,
)
from fer_edge.personal.profile import Profile, load_profile

ROOT = Path(__file__).resolve().parents[1]
TFEID = Path(os.environ.get("FER_EDGE_TFEID", ROOT.parent / "shared" / "data" / "tfeid_dev"))
LETTERS = {"a": "neutral", "b": "happy", "c": "sad", "d": "angry", "e": "disgust", "f": "fear",
           "g": "surprise"}
NAME = re.compile(r"^(\d\d)(\d)1([a-g])\d\d$")


@pytest.fixture(scope="module")
def model():
    return fer_edge.load()


@pytest.fixture(scope="module")
def faces(model):
    """Real face crops: the packaged sample clip's astronaut, a few frames."""
    cap = cv2.VideoCapture(str(ROOT / "fer_edge" / "assets" / "sample_astronaut.mp4"))
    crops = []
    while len(crops) < 4:
        ok, frame = cap.read()
        assert ok, "the sample clip has too few frames with a face"
        found = model.finder("auto")(frame)
        if found:
            crops.append(found[0].crop)
        for _ in range(10):
            cap.read()
    cap.release()
    return np.stack(crops)


def tfeid_person(person: str) -> dict[str, list[Path]]:
    """{expression: photos} of one tfeid_dev person; skips when the data is absent."""
    if not TFEID.is_dir():
        pytest.skip(f"tfeid_dev not found at {TFEID} (set FER_EDGE_TFEID)")
    out: dict[str, list[Path]] = {}
    for f in sorted(TFEID.glob(f"{person}*.jpg")):
        m = NAME.match(f.stem)
        if m:
            out.setdefault(LETTERS[m.group(3)], []).append(f)
    return out


# --- embeddings from the packaged model ---------------------------------------------------
def test_embedding_shape_determinism_and_flip_average(model, faces):
    d = model.spec.embedding.size
    e = model.embed(faces, tta_flip=True)
    assert e.shape == (len(faces), d) and e.dtype == np.float32
    assert np.array_equal(e, model.embed(faces, tta_flip=True))
    plain = model.embed(faces, tta_flip=False)
    mirror = model.embed(np.ascontiguousarray(faces[:, :, ::-1]), tta_flip=False)
    np.testing.assert_allclose(e, (plain + mirror) / 2, rtol=1e-5, atol=1e-6)
    probs, emb = model.predict(faces, tta_flip=True, embedding=True)
    assert np.array_equal(emb, e) and np.array_equal(probs, model.predict(faces, tta_flip=True))


# --- the method --------------------------------------------------------------------------
def test_shot_variants_are_the_shot_its_mirror_and_small_shifts(faces):
    v, src = shot_variants(faces[:2])
    assert v.shape == (16, 48, 48) and v.dtype == np.uint8
    assert list(src) == [0] * 8 + [1] * 8
    assert np.array_equal(v[0], faces[0]) and np.array_equal(v[1], faces[0][:, ::-1])
    assert all(not np.array_equal(v[k], faces[0]) for k in range(2, 8))


def test_correction_learns_the_shots_and_leaves_unenrolled_classes_to_the_model():
    rng = np.random.default_rng(0)
    c, d = 7, 32
    centres = rng.normal(size=(c, d))
    y = np.repeat([0, 1, 2], 4)
    emb = (centres[y] + 0.3 * rng.normal(size=(len(y), d))).astype(np.float32)
    probs = np.full((len(y), c), 1 / c, np.float32)  # a model that knows nothing
    corr = fit_correction(probs, emb, y, 4, np.zeros(d, np.float32), np.ones(d, np.float32))
    assert list(corr.enrolled) == [True] * 3 + [False] * 4
    out = corr.adjust(probs, emb)
    assert out.dtype == np.float32 and np.allclose(out.sum(1), 1, atol=1e-5)
    assert (out.argmax(1) == y).all()
    # a class nobody enrolled keeps the model's score relative to the others it was not fit on
    assert np.allclose(out[:, 3:] / out[:, 3:4], 1, atol=1e-5)


def test_neutral_anchor_is_the_mean_neutral_shot_and_only_when_asked():
    from fer_edge.personal.method import Recipe

    rng = np.random.default_rng(1)
    d = 16
    y = np.array([0, 0, 6, 6])
    emb = rng.normal(size=(4, d)).astype(np.float32)
    mean, std = np.full(d, 0.5, np.float32), np.full(d, 2.0, np.float32)
    probs = np.full((4, 7), 1 / 7, np.float32)
    corr = fit_correction(probs, emb, y, 2, mean, std, neutral=6)
    np.testing.assert_allclose(corr.anchor, ((emb[2:] - mean) / std).mean(0), rtol=1e-5)
    off = fit_correction(probs, emb, y, 2, mean, std, Recipe(anchor=False), neutral=6)
    assert not off.anchor.any()
    assert not fit_correction(probs, emb, y, 2, mean, std, neutral=None).anchor.any()


def test_prototype_term_grows_with_the_shots():
    from fer_edge.personal.method import Recipe

    rng = np.random.default_rng(2)
    d = 16
    y = np.array([0, 1])
    emb = rng.normal(size=(2, d)).astype(np.float32)
    probs = np.full((2, 7), 1 / 7, np.float32)
    z, o = np.zeros(d, np.float32), np.ones(d, np.float32)
    w = [fit_correction(probs, emb, y, s, z, o).weight
         - fit_correction(probs, emb, y, s, z, o, Recipe(proto=0.0)).weight for s in (1, 3)]
    assert 0 < np.abs(w[0]).max() < np.abs(w[1]).max()
    assert not w[0][:, 2:].any()  # classes not enrolled get no prototype


# --- profile files -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def profile(model, faces):
    from fer_edge.personal.enroll import enrol_crops

    return enrol_crops(model, np.concatenate([faces, faces[:, :, ::-1]]),
                       np.array([3, 3, 6, 6, 3, 3, 6, 6]))


def test_profile_round_trip_small_no_images_and_0600(profile, tmp_path, model, faces):
    path = profile.save(tmp_path / "me.profile")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_size < 50 * 1024
    back = load_profile(path)
    assert back.model_sha256 == model.model_sha256 and back.enrolled == ("happy", "neutral")
    probs, emb = model.predict(faces, embedding=True)
    np.testing.assert_allclose(back.adjust(probs, emb), profile.adjust(probs, emb), atol=2e-3)
    with pytest.raises(Exception, match="exists; pass --force"):
        profile.save(path)
    profile.save(path, force=True)
    assert path.stat().st_mode & 0o777 == 0o600


def test_version_1_profile_still_loads_with_no_anchor(profile, model, faces):
    d = profile.correction.weight.shape[0]
    k = len(profile.correction.centres) * profile.correction.centres.shape[1]
    old = Profile.from_bytes(_resigned(profile, _as_version(1), cut=2 * d + k))  # no anchor
    assert not old.correction.anchor.any() and old.correction.anchor.shape == (d,)
    np.testing.assert_allclose(old.correction.weight, profile.correction.weight, atol=1e-2)
    probs, emb = model.predict(faces, embedding=True)
    assert old.adjust(probs, emb).shape == probs.shape


@pytest.mark.parametrize("damage", ["truncate", "edit", "foreign"])
def test_damaged_profile_refused(profile, tmp_path, damage):
    data = bytearray(profile.to_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "edit":
        data[len(data) // 2] ^= 0x01
    else:
        data = bytearray(b"not a profile at all")
    path = tmp_path / "bad.profile"
    path.write_bytes(bytes(data))
    with pytest.raises(ProfileError, match="enrol again"):
        load_profile(path)
    with pytest.raises(ProfileError):
        fer_edge.load(profile=path)


def test_profile_for_another_model_refused(profile, tmp_path, capsys):
    other = dataclasses.replace(profile, model_sha256="0" * 64)
    path = other.save(tmp_path / "other.profile")
    with pytest.raises(ProfileError, match="made for model sha256 000000000000"):
        fer_edge.load(model=None, profile=path)
    rc = main(["demo", "--video", "sample", "--headless", "--max-frames", "2", "--profile",
               str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "enrol again" in err[0] and str(path) in err[0]


def test_load_with_profile_personalises_predict_and_analyze(profile, model, faces):
    personal = fer_edge.load(profile=profile)
    probs, emb = model.predict(faces, embedding=True)
    np.testing.assert_allclose(personal.predict(faces), profile.adjust(probs, emb), atol=1e-6)
    assert isinstance(Profile, type) and fer_edge.load(None).profile is None


# --- the whole path on real photos of one person ---------------------------------------------
def test_enrol_from_photo_folders_improves_the_persons_other_photos(tmp_path):
    photos = tfeid_person("01")
    rng = np.random.default_rng(0)
    tree, rest = tmp_path / "me", []
    for expression, files in photos.items():
        pick = set(rng.choice(len(files), min(2, len(files) - 1), replace=False).tolist())
        (tree / expression).mkdir(parents=True)
        for i, f in enumerate(files):
            if i in pick:
                shutil.copy(f, tree / expression)
            else:
                rest.append((f, expression))
    out = tmp_path / "me.profile"
    assert main(["enroll", "--images", str(tree), "--out", str(out)]) == 0
    plain, personal = fer_edge.load(), fer_edge.load(profile=out)
    y_plain, y_personal, truth = [], [], []
    for f, expression in rest:
        frame = cv2.imread(str(f))
        y_plain.append(plain.analyze(frame)[0]["label"])
        y_personal.append(personal.analyze(frame)[0]["label"])
        truth.append(expression)
    acc = [np.mean(np.array(p) == np.array(truth)) for p in (y_plain, y_personal)]
    assert acc[1] > acc[0] + 0.1, acc


def test_evaluate_with_a_profile(profile, faces, tmp_path, capsys):
    data = tmp_path / "faces"
    for name, crops in (("happy", faces), ("neutral", faces[:, :, ::-1])):
        (data / name).mkdir(parents=True)
        for i in range(10):
            cv2.imwrite(str(data / name / f"{i}.png"), np.roll(crops[i % len(crops)], i % 3, 1))
    good = profile.save(tmp_path / "me.profile")
    model = str(ROOT / "fer_edge" / "assets" / "fer_default_int8.tflite")
    args = ["evaluate", model, "--data", str(data), "--split", "train", "--latency-runs", "1"]
    assert main([*args, "--profile", str(good)]) == 0
    assert "personal profile me.profile" in capsys.readouterr().out
    other = dataclasses.replace(profile, model_sha256="f" * 64).save(tmp_path / "other.profile")
    assert main([*args, "--profile", str(other)]) == 2
    assert "made for model sha256 ffffffffffff" in capsys.readouterr().err


# --- the second hardening sweep (issue 34): profiles written by hand, odd paths --------------
def _resigned(profile, edit=None, tail: bytes = b"", cut: int = 0) -> bytes:
    """The profile's bytes with its header put through ``edit``, the last ``cut`` bytes of
    the arrays dropped and ``tail`` appended, checksum made again: what only a hand-written
    (or an older fer-edge's) file looks like, not a damaged one."""
    import hashlib
    import json
    import struct

    from fer_edge.personal.profile import MAGIC

    data = profile.to_bytes()
    n = struct.unpack_from("<I", data, len(MAGIC))[0]
    start = len(MAGIC) + 4
    header = json.loads(data[start:start + n])
    if edit:
        edit(header)
    head = json.dumps(header).encode()
    arrays = data[start + n:-32]
    body = MAGIC + struct.pack("<I", len(head)) + head + arrays[:len(arrays) - cut] + tail
    return body + hashlib.sha256(body).digest()


def _as_version(version: int):
    """A header edit: the profile as an older fer-edge wrote it (no local-share fields)."""
    def edit(header: dict) -> None:
        for key in ("centres", "centre_dims", "centre_scale", "width"):
            header.pop(key)
        header["version"] = version
    return edit


@pytest.mark.parametrize("edit", [
    lambda h: h.update(model_sha256=None), lambda h: h.update(model_sha256="xyz"),
    lambda h: h.update(dim="12"), lambda h: h.update(dim=True), lambda h: h.update(dim=-5),
    lambda h: h.update(enrolled=[True]), lambda h: h.update(labels=5),
    lambda h: h.update(shots=[1]), lambda h: h.update(shots={"joy": 2}),
    lambda h: h.update(share=0), lambda h: h.update(share=1.5), lambda h: h.update(share="1"),
    lambda h: h.update(share=True), lambda h: h.update(centres=-1),
    lambda h: h.update(centres=1.5), lambda h: h.update(centre_dims=64),
    lambda h: h.update(width=-1.0), lambda h: h.update(width="1"),
    lambda h: h.update(centre_scale=None), lambda h: h.update(norm_floor=float("nan")),
    lambda h: h.update(norm_floor="1"),
], ids=["sha-none", "sha-short", "dim-str", "dim-bool", "dim-neg", "enrolled-len",
        "labels-int", "shots-list", "shots-unknown", "share-0", "share-big", "share-str",
        "share-bool", "centres-neg", "centres-float", "centre-dims", "width-neg", "width-str",
        "centre-scale-none", "norm-floor-nan", "norm-floor-str"])
def test_a_hand_edited_profile_with_a_valid_checksum_is_refused(profile, tmp_path, edit):
    path = tmp_path / "edited.profile"
    path.write_bytes(_resigned(profile, edit))
    with pytest.raises(ProfileError, match="header is incomplete or malformed; enrol again"):
        fer_edge.load(profile=path)


def test_profile_stores_its_share_and_one_made_before_the_pool_predicts_as_made(profile,
                                                                                  model, faces):
    assert profile.correction.share == pytest.approx(SHARE)
    again = Profile.from_bytes(profile.to_bytes())
    assert again.correction.share == pytest.approx(SHARE)
    before = Profile.from_bytes(_resigned(profile, lambda h: h.pop("share")))
    assert before.correction.share == 1.0  # the corrected probabilities alone, as then
    probs, emb = model.predict(faces, embedding=True)
    c = before.correction
    alone = softmax(log_probs(probs) + c.enrolled * (
        features(emb, c.mean, c.std, c.anchor, c.norm_floor) @ c.weight + c.bias))
    np.testing.assert_allclose(before.adjust(probs, emb), alone, atol=1e-6)


def test_adjust_refuses_values_no_model_gives(profile):
    d = profile.correction.weight.shape[0]
    probs, emb = np.full((2, 7), 1 / 7, np.float32), np.zeros((2, d), np.float32)
    assert profile.adjust(probs, emb).shape == (2, 7)
    for bad_p, bad_e in ((probs * 10, emb), (-probs, emb), (probs, emb + np.nan),
                         (probs, emb + np.inf), (probs + np.nan, emb)):
        with pytest.raises(ProfileError, match="probabilities in \\[0, 1\\] and finite"):
            profile.adjust(bad_p, bad_e)


def test_a_version_2_profile_keeps_the_fixed_pool(profile, model, faces):
    """Made before the local share: no centres stored, the share SHARE on every face."""
    k = len(profile.correction.centres) * profile.correction.centres.shape[1]
    old = Profile.from_bytes(_resigned(profile, _as_version(2), cut=k))
    assert len(old.correction.centres) == 0 and old.correction.width == 0
    probs, emb = model.predict(faces, embedding=True)
    fixed = dataclasses.replace(profile.correction, centres=np.zeros((0, 128), np.float32))
    np.testing.assert_allclose(old.adjust(probs, emb), fixed.adjust(probs, emb), atol=2e-3)


def test_local_share_is_one_on_a_centre_and_the_pool_far_away():
    from fer_edge.personal.method import local_share

    centres = np.array([[0.0, 0.0], [3.0, 0.0]], np.float32)
    faces = np.array([[0.0, 0.0], [3.0, 0.1], [0.0, 50.0]], np.float32)
    s = local_share(faces, centres, 1.0, 0.25)
    assert s[0] == pytest.approx(1.0) and 0.99 < s[1] < 1.0 and s[2] == pytest.approx(0.25)
    one_width_away = local_share(np.array([[0.0, 1.0]], np.float32), centres[:1], 1.0, 0.25)
    assert one_width_away[0] == pytest.approx(0.25 + 0.75 * np.exp(-0.5))
    assert (local_share(faces, centres[:0], 1.0, 0.25) == 0.25).all()
    assert (local_share(faces, centres, 0.0, 0.25) == 0.25).all()


def test_projection_is_fixed_across_numpy_versions():
    """Profiles store projected features: the matrix must never change (legacy RandomState
    stream, frozen by NumPy's compatibility policy)."""
    import hashlib

    from fer_edge.personal.method import LOCAL_DIMS, project, projection

    perm, signs = projection(2048)
    assert sorted(perm) == list(range(2048)) and set(signs) == {-1.0, 1.0}
    assert not perm.flags.writeable and not signs.flags.writeable
    digest = hashlib.sha256(perm.tobytes() + (signs > 0).tobytes()).hexdigest()[:16]
    assert digest == "aab01e4ed1c5e6b8"
    assert project(np.ones((3, 2048), np.float32)).shape == (3, LOCAL_DIMS)
    assert project(np.ones((1, 1000), np.float32)).shape == (1, LOCAL_DIMS)  # any D
    x = np.random.default_rng(0).normal(size=(50, 2048)).astype(np.float32)
    d0 = np.linalg.norm(x[:25] - x[25:], axis=1)
    d1 = np.linalg.norm(project(x[:25]) - project(x[25:]), axis=1)
    assert np.abs(d1 / d0 - 1).max() < 0.3


def test_enrolled_profile_trusts_itself_on_its_own_shots(profile, model, faces):
    """The profile stores one centre per shot; on a shot's own face its share is ~1, on
    another person's face (a flipped, shifted crop of nobody it saw: noise) the pool's."""
    from fer_edge.personal.method import features, local_share, project

    c = profile.correction
    assert c.centres.shape == (8, 128) and c.width > 0 and c.share == pytest.approx(SHARE)
    _, emb = model.predict(faces, embedding=True)
    xp = project(features(emb, c.mean, c.std, c.anchor, c.norm_floor))
    assert (local_share(xp, c.centres, c.width, c.share) > 0.95).all()
    noise = np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    _, far = model.predict(noise, embedding=True)
    xf = project(features(far, c.mean, c.std, c.anchor, c.norm_floor))
    assert (local_share(xf, c.centres, c.width, c.share) < 0.5).all()


def test_the_pool_keeps_a_confident_model_and_turns_a_close_call():
    """Share 1/3: the profile flips the model's answer only where the model's top-two margin
    is under half the profile's opposite margin."""
    d, c = 4, 3
    zeros, ones = np.zeros(d, np.float32), np.ones(d, np.float32)
    weight = np.zeros((d, c), np.float32)
    corr = Correction(weight, np.array([0.0, 8.0, 0.0], np.float32), np.ones(c, bool), zeros,
                      ones, zeros)  # a profile sure of class 1 for every face
    assert corr.share == pytest.approx(1 / 3)
    sure = np.array([[0.9, 0.05, 0.05]], np.float32)  # the model: class 0, margin 0.85
    close = np.array([[0.45, 0.40, 0.15]], np.float32)  # margin 0.05
    emb = np.ones((1, d), np.float32)
    assert corr.adjust(sure, emb).argmax() == 0
    assert corr.adjust(close, emb).argmax() == 1
    out = corr.adjust(np.r_[sure, close], np.r_[emb, emb])
    assert out.dtype == np.float32 and np.allclose(out.sum(1), 1, atol=1e-6)


def test_bytes_after_the_arrays_are_refused(profile, tmp_path):
    path = tmp_path / "long.profile"
    path.write_bytes(_resigned(profile, tail=b"\0" * 64))
    with pytest.raises(ProfileError, match="longer than its header says"):
        load_profile(path)


def test_profile_path_that_is_a_folder_or_empty_and_use_profile_with_a_path(profile, tmp_path,
                                                                            capsys):
    from cli_sweep import assert_refused

    with pytest.raises(ProfileError, match="is a folder; give the profile file"):
        fer_edge.load(profile=tmp_path)
    with pytest.raises(ProfileError, match="empty path"):
        fer_edge.load(profile="")
    with pytest.raises(TypeError, match="give a Profile"):
        fer_edge.load(profile=123)
    assert_refused(["demo", "--video", "sample", "--headless", "--profile", tmp_path], capsys,
                   tmp_path, "is a folder")
    m = fer_edge.load()
    saved = str(profile.save(tmp_path / "me.profile"))
    with pytest.raises(TypeError, match=r"use_profile\(fer_edge.personal.load_profile\("):
        m.use_profile(saved)  # the runtime layer reads no profile files: the message says how
    m.use_profile(load_profile(saved))
    assert m.profile is not None and m.profile.enrolled == profile.enrolled


@pytest.mark.parametrize("arrays", [
    dict(bias="nan"), dict(weight="inf"), dict(std=0.0), dict(anchor="nan"), dict(mean="-inf"),
], ids=["bias-nan", "weight-inf", "std-zero", "anchor-nan", "mean-inf"])
def test_a_profile_whose_arrays_no_enrolment_writes_is_refused(profile, model, faces,
                                                               tmp_path, arrays):
    """A checksum-valid file with NaN/inf values or a zero spread used to load and make every
    prediction NaN (shown as the first class); now refused when read."""
    import dataclasses

    c = profile.correction
    edited = {k: np.full_like(getattr(c, k), float(v)) for k, v in arrays.items()}
    bad = dataclasses.replace(profile, correction=dataclasses.replace(c, **edited))
    path = tmp_path / "values.profile"
    path.write_bytes(bad.to_bytes())
    with pytest.raises(ProfileError, match="values no enrolment writes"):
        fer_edge.load(profile=path)


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_project_is_the_padded_count_sketch_bit_for_bit(n):
    """The no-padding path of project (D a multiple of LOCAL_DIMS) gives exactly the numbers of
    the general padded one, for one face or many (profiles store projected features)."""
    from fer_edge.personal.method import LOCAL_DIMS, project, projection

    x = np.random.default_rng(n).standard_normal((n, 2048)).astype(np.float32)
    perm, signs = projection(2048)
    padded = np.zeros((n, 2048), np.float32)
    padded[:, :] = x[:, perm] * signs
    want = padded.reshape(n, LOCAL_DIMS, 16).sum(axis=2)
    assert np.array_equal(project(x), want)
