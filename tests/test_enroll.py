"""``fer-edge enroll``: photo folders, the guided --video session, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_personal import tfeid_person

from fer_edge.cli import main
from fer_edge.personal.guided import ORDER
from fer_edge.personal.profile import load_profile


def one_line_error(capsys, needle: str) -> None:
    """stderr holds one error line (log lines aside) with ``needle``, and no traceback."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("fer-edge enroll: error: ")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


def write_clip(path, frames: list[np.ndarray], fps: float = 10.0) -> None:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()


def session_frames(photos: dict, per: int) -> list[np.ndarray]:
    """For each expression the session asks in turn, ``per`` photos of it, spread over its
    photos (neighbouring photos of one performance can be near-copies, which it rejects)."""
    return [cv2.imread(str(f)) for e in ORDER
            for f in photos[e][::max(1, len(photos[e]) // per)][:per]]


def test_enroll_from_folders_with_synonyms_and_a_class_left_out(tmp_path, capsys):
    photos = tfeid_person("02")
    tree = tmp_path / "photos"
    for folder, expression in (("Happiness", "happy"), ("sadness", "sad"), ("anger", "angry"),
                               ("neutral", "neutral")):
        (tree / folder).mkdir(parents=True)
        for f in photos[expression][:2]:
            (tree / folder / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "sub" / "p.fer"
    assert main(["enroll", "--images", str(tree), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "not enrolled (left to the model): disgust, fear, surprise" in said
    prof = load_profile(out)
    assert prof.shots == {"angry": 2, "happy": 2, "sad": 2, "neutral": 2}
    assert out.stat().st_mode & 0o777 == 0o600
    assert not any(p.name.endswith(".part") for p in out.parent.iterdir())
    # never over an existing profile without --force; with it, replaced
    before = out.read_bytes()
    assert main(["enroll", "--images", str(tree), "--out", str(out)]) == 2
    one_line_error(capsys, "exists; pass --force")
    assert out.read_bytes() == before
    assert main(["enroll", "--images", str(tree), "--out", str(out), "--force"]) == 0
    assert out.stat().st_mode & 0o777 == 0o600


def test_enroll_bad_folders_one_line_exit_2(tmp_path, capsys):
    tree = tmp_path / "photos"
    (tree / "contempt").mkdir(parents=True)
    cv2.imwrite(str(tree / "contempt" / "a.png"), np.full((64, 64, 3), 128, np.uint8))
    out = tmp_path / "p.fer"
    assert main(["enroll", "--images", str(tree), "--out", str(out)]) == 2
    one_line_error(capsys, "names no expression")
    (tree / "contempt").rename(tree / "happy")
    assert main(["enroll", "--images", str(tree), "--out", str(out)]) == 2
    one_line_error(capsys, "no face found in any of its 1 photos")
    assert main(["enroll", "--images", str(tmp_path / "nope"), "--out", str(out)]) == 2
    one_line_error(capsys, "not a folder")
    assert not out.exists()


def test_guided_video_session_headless(tmp_path, capsys):
    photos = tfeid_person("03")
    clip = tmp_path / "session.avi"
    write_clip(clip, session_frames(photos, 2))
    out = tmp_path / "p.fer"
    assert main(["enroll", "--video", str(clip), "--headless", "--per-expression", "2",
                 "--out", str(out)]) == 0
    prof = load_profile(out)
    assert prof.shots == {e: 2 for e in prof.labels}, prof.shots


def test_guided_video_that_ends_mid_session_writes_nothing(tmp_path, capsys):
    photos = tfeid_person("03")
    clip = tmp_path / "short.avi"
    write_clip(clip, session_frames(photos, 2)[:5])  # neutral, happy, then part of surprise
    out = tmp_path / "p.fer"
    assert main(["enroll", "--video", str(clip), "--headless", "--per-expression", "2",
                 "--out", str(out)]) == 2
    one_line_error(capsys, "ended during 'surprise' (2 of 7 expressions done); nothing was "
                           "written")
    assert list(tmp_path.iterdir()) == [clip]


def test_guided_session_rejects_blurred_and_duplicate_frames():
    from fer_edge.personal.guided import BLUR_MIN, is_duplicate, sharpness

    photos = tfeid_person("03")
    import fer_edge

    finder = fer_edge.load().finder("auto")
    frame = cv2.imread(str(photos["happy"][0]))
    crop = finder(frame)[0].crop
    other = finder(cv2.imread(str(photos["surprise"][0])))[0].crop
    blurred = finder(cv2.GaussianBlur(frame, (21, 21), 0))[0].crop
    assert sharpness(blurred) < BLUR_MIN <= sharpness(crop)
    assert is_duplicate(crop, [other, crop]) and not is_duplicate(crop, [other])


@pytest.mark.parametrize("args, needle", [
    (["--camera", "0", "--headless"], "needs a window"),
    (["--video", "missing.mp4", "--headless"], "video file not found"),
])
def test_guided_bad_sources_one_line_exit_2(tmp_path, capsys, args, needle):
    assert main(["enroll", *args, "--out", str(tmp_path / "p.fer")]) == 2
    one_line_error(capsys, needle)


def test_enroll_is_light_tier():
    """`fer-edge enroll` and profiles never import TensorFlow (they run on the device)."""
    import subprocess
    import sys

    code = ("import sys, fer_edge.cli, fer_edge.personal.cli, fer_edge.personal.enroll, "
            "fer_edge.personal.guided, fer_edge.personal.profile, fer_edge.personal.method\n"
            "try:\n    fer_edge.cli.build_parser().parse_args(['enroll', '--help'])\n"
            "except SystemExit as e:\n    assert e.code == 0\n"
            "print('HEAVY:' + ','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'tf_keras', 'sklearn'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "HEAVY:", r.stdout[-500:]


# -- the second hardening sweep (issue 34) ---------------------------------------------------
def test_out_that_is_a_broken_link_or_not_a_regular_file_is_refused(tmp_path, capsys):
    import os
    from pathlib import Path

    from cli_sweep import assert_refused

    tree = tmp_path / "photos" / "happy"
    tree.mkdir(parents=True)
    (tmp_path / "dead.fer").symlink_to(tmp_path / "nowhere" / "p.fer")
    assert_refused(["enroll", "--images", tmp_path / "photos", "--out", tmp_path / "dead.fer"],
                   capsys, tmp_path, "is a link to", "which does not exist")
    (tmp_path / "null.fer").symlink_to(os.devnull)  # --force replaces files, not a device
    assert_refused(["enroll", "--images", tmp_path / "photos", "--out", tmp_path / "null.fer",
                    "--force"], capsys, tmp_path, "not a regular file")
    assert Path(os.devnull).is_char_device()
