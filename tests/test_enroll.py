"""``fer-edge enroll``: photo folders, the guided --video session, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_personal import tfeid_person

from fer_edge.cli import main
from fer_edge.personal.guided import COUNTDOWN_S, HOLD_S, ORDER, SLOT_S
from fer_edge.personal.method import SHARE
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


def session_frames(photos: dict, per: int, fps: float = 2.0) -> list[np.ndarray]:
    """A recording that follows the guided schedule at ``fps``: for each expression in turn,
    COUNTDOWN_S of the previous expression's last photo (a blank frame first: time to change
    face, never kept), then HOLD_S of ``per`` of its photos, each held HOLD_S / per, spread
    over its photos (neighbouring photos of one performance can be near-copies)."""
    frames, before = [], None
    for e in ORDER:
        shown = [cv2.imread(str(f)) for f in photos[e][::max(1, len(photos[e]) // per)][:per]]
        before = np.full_like(shown[0], 128) if before is None else before
        frames += [before] * round(COUNTDOWN_S * fps)
        for img in shown:
            frames += [img] * round(HOLD_S / per * fps)
        before = shown[-1]
    return frames


def photo_tree(root, person: str, folders: dict, per: int):
    """``root/<folder>/``: the first ``per`` tfeid_dev photos of ``person``'s expression, for
    each folder name -> expression of ``folders``; returns ``root``."""
    photos = tfeid_person(person)
    for folder, expression in folders.items():
        (root / folder).mkdir(parents=True)
        for f in photos[expression][:per]:
            (root / folder / f.name).write_bytes(f.read_bytes())
    return root


def test_enroll_from_folders_with_synonyms_and_a_class_left_out(tmp_path, capsys):
    tree = photo_tree(tmp_path / "photos", "02", {"Happiness": "happy", "sadness": "sad",
                                                  "anger": "angry", "neutral": "neutral"}, 2)
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
    (tree / "happy" / "a.png").rename(tree / "happy" / "IMG_0001.HEIC")  # no photo it reads
    assert main(["enroll", "--images", str(tree), "--out", str(out)]) == 2
    one_line_error(capsys, "no photo in its <expression>/ folders (read: .bmp, .jpeg")
    assert not out.exists()


def test_guided_video_session_headless(tmp_path, capsys):
    photos = tfeid_person("03")
    clip = tmp_path / "session.avi"
    write_clip(clip, session_frames(photos, 2), fps=2.0)
    out = tmp_path / "p.fer"
    assert main(["enroll", "--video", str(clip), "--headless", "--per-expression", "2",
                 "--out", str(out)]) == 0
    prof = load_profile(out)
    assert prof.shots == {e: 2 for e in prof.labels}, prof.shots


def test_share_flag_is_stored_in_the_profile(tmp_path, capsys):
    tree = photo_tree(tmp_path / "me", "03", {e: e for e in ("happy", "sad", "neutral")}, 1)
    for share, name in ((None, "default.fer"), ("1", "alone.fer")):
        extra = ["--share", share] if share else []
        assert main(["enroll", "--images", str(tree), "--out", str(tmp_path / name)] + extra) == 0
    assert load_profile(tmp_path / "default.fer").correction.share == pytest.approx(SHARE)
    assert load_profile(tmp_path / "alone.fer").correction.share == 1.0
    assert "share of the vote 1.00" in capsys.readouterr().out


def test_guided_video_that_ends_mid_session_writes_nothing(tmp_path, capsys):
    photos = tfeid_person("03")
    clip = tmp_path / "short.avi"
    # neutral, happy, then surprise's countdown and the start of its hold
    write_clip(clip, session_frames(photos, 2)[:round((2 * SLOT_S + COUNTDOWN_S + 1) * 2)],
               fps=2.0)
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
    (["--picamera", "--headless"], "needs a window"),
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


# -- EnrollConfig: flags and the [enroll] table of a recipe (issue 30 §3) --------------------
def enroll_args(argv: list[str]):
    """The parsed ``fer-edge enroll`` namespace of ``argv``."""
    from fer_edge.cli import build_parser

    return build_parser().parse_args(["enroll", *map(str, argv)])


def enroll_config(argv: list[str]):
    from fer_edge.config import config_from_args
    from fer_edge.personal.config import EnrollConfig

    cfg = config_from_args(EnrollConfig, enroll_args(argv))
    cfg.validate()
    return cfg


def toml_table(section: str, values: dict) -> str:
    """A TOML ``[section]`` table of str/int/bool values (None left out)."""
    import json

    def text(v):
        return ("true" if v else "false") if isinstance(v, bool) else json.dumps(v)

    return f"[{section}]\n" + "".join(f"{k} = {text(v)}\n" for k, v in values.items()
                                      if v is not None)


@pytest.mark.parametrize("source", [["--images", "photos"], ["--camera", "2"], ["--picamera"],
                                    ["--video", "clip.mp4"]],
                         ids=["images", "camera", "picamera", "video"])
def test_enroll_flags_and_toml_round_trip(tmp_path, source):
    """Every setting given as a flag, written as an [enroll] table, read back by --config:
    the same config; and every value differs from the default, so each was really read."""
    import dataclasses

    from fer_edge.personal.config import EnrollConfig

    flags = [*source, "--out", tmp_path / "me.fer", "--force", "--model", "m.onnx",
             "--detector", "haar", "--headless", "--per-expression", "3",
             "--frame-size", "1280x720", "--threads", "2", "--share", "0.5"]
    cfg = enroll_config(flags)
    default = EnrollConfig()
    chosen = source[0][2:]
    unset = {"images", "camera", "picamera", "video"} - {chosen}
    assert [f.name for f in dataclasses.fields(cfg)
            if getattr(cfg, f.name) == getattr(default, f.name)] == sorted(
        unset, key=[f.name for f in dataclasses.fields(cfg)].index)
    recipe = tmp_path / "enroll.toml"
    recipe.write_text(toml_table("enroll", dataclasses.asdict(cfg)) + "\n[demo]\nema = 0.5\n")
    assert enroll_config(["--config", recipe]) == cfg


def test_enroll_flags_win_over_the_recipe_and_a_source_flag_replaces_its_source(tmp_path):
    recipe = tmp_path / "enroll.toml"
    recipe.write_text(toml_table("enroll", {"images": "photos", "out": "a.fer",
                                            "per_expression": 7, "detector": "haar"}))
    cfg = enroll_config(["--config", recipe, "--out", "b.fer", "--video", "c.mp4"])
    assert (cfg.images, cfg.video, cfg.out, cfg.per_expression, cfg.detector) == (
        "", "c.mp4", "b.fer", 7, "haar")


def test_enroll_reads_its_table_end_to_end(tmp_path, capsys):
    """``fer-edge enroll --config`` alone: the source, --out and the detector come from the
    recipe's [enroll] table (another stage's table beside it is skipped)."""
    tree = photo_tree(tmp_path / "photos", "02", {"happy": "happy", "neutral": "neutral"}, 2)
    out = tmp_path / "from-recipe.fer"
    recipe = tmp_path / "enroll.toml"
    recipe.write_text("[demo]\nmax_faces = 1\n\n" + toml_table(
        "enroll", {"images": str(tree), "out": str(out), "detector": "blazeface-full"}))
    assert main(["enroll", "--config", str(recipe)]) == 0
    assert f"profile written to {out}" in capsys.readouterr().out
    assert load_profile(out).shots == {"happy": 2, "neutral": 2}


@pytest.mark.parametrize("table, needle", [
    ('images = "photos"\nper_expresion = 3', "unknown key(s) per_expresion for [enroll] (did "
                                              "you mean per_expresion -> per_expression?)"),
    ('images = "photos"\nper_expression = "five"', "per_expression = 'five' must be a whole "
                                                    "number"),
    ('images = "photos"\nper_expression = 51', "per_expression = 51: out of range; use a "
                                                "number >= 1 and <= 50"),
    ('camera = 0\nvideo = "c.mp4"', "choose one source: --images DIR, --camera N, --picamera "
                                    "or --video F (given: --camera and --video)"),
    ('images = "photos"\nshare = 0', "share = 0.0: out of range; use a number > 0 and <= 1"),
    ('images = "photos"\nshare = 1.5', "share = 1.5: out of range; use a number > 0 and <= 1"),
], ids=["unknown-key", "wrong-type", "out-of-range", "two-sources", "share-0", "share-big"])
def test_a_bad_enroll_recipe_is_refused_in_one_line(tmp_path, capsys, table, needle):
    """Exit 2, one line naming the key and what to give; nothing written."""
    from cli_sweep import assert_refused

    recipe = tmp_path / "enroll.toml"
    recipe.write_text(f"[enroll]\nout = \"{tmp_path / 'p.fer'}\"\n{table}\n")
    assert_refused(["enroll", "--config", recipe], capsys, tmp_path, needle)


def test_enroll_help_shows_each_default_once(capsys):
    """Each option's help says its default at most once, and every non-empty default of
    EnrollConfig appears once; the defaults shared with the demo are the demo's."""
    import dataclasses

    from fer_edge.config import flag_name
    from fer_edge.demo.config import DemoConfig
    from fer_edge.personal.config import EnrollConfig

    with pytest.raises(SystemExit) as exc:
        main(["enroll", "--help"])
    assert exc.value.code == 0
    lines = capsys.readouterr().out.split("\noptions:\n", 1)[1].splitlines()
    blocks: dict[str, str] = {}  # first flag -> its help, on one line
    for line in lines:
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            blocks[flag] = line
        else:
            blocks[flag] += " " + line.strip()
    assert [b for b in blocks.values() if b.lower().count("default") > 1] == []
    for f in dataclasses.fields(EnrollConfig):
        help_ = " ".join(blocks[flag_name(f.name)].split())
        if f.default not in ("", None):
            assert help_.count(f"(default: {f.default})") == 1, help_
    for name in ("model", "detector", "frame_size", "threads"):
        assert getattr(EnrollConfig(), name) == getattr(DemoConfig(), name)


@pytest.mark.parametrize("args, needle", [
    (["--images", "a", "--video", "b"], "argument --video: not allowed with argument --images"),
    (["--camera", "-1"], "argument --camera: -1 is out of range; use a number >= 0"),
], ids=["two-source-flags", "camera-range"])
def test_enroll_flags_refused_as_parsed(capsys, args, needle):
    with pytest.raises(SystemExit) as exc:
        main(["enroll", *args, "--out", "p.fer"])
    assert exc.value.code == 2
    one_line_error(capsys, needle)


@pytest.mark.parametrize("args, needle", [
    (["--out", "p.fer"], "choose one source: --images DIR, --camera N, --picamera or "
                         "--video F"),
    (["--images", "a"], "pass --out FILE"),
], ids=["no-source", "no-out"])
def test_enroll_needs_one_source_and_out(tmp_path, capsys, args, needle):
    from cli_sweep import assert_refused

    assert_refused(["enroll", *args], capsys, tmp_path, needle)


# -- audit of issue 32: --force replaces a profile, never a user's other file ----------------
def test_force_replaces_only_a_profile_not_a_photo_or_other_file(tmp_path, capsys):
    """--out pointed by mistake at one of the enrolment photos (or notes, a model): even with
    --force it is refused before any work and left as it was; an old or damaged profile and
    an empty file are still replaced."""
    from cli_sweep import assert_refused

    tree = photo_tree(tmp_path / "photos", "02", {"happy": "happy", "neutral": "neutral"}, 2)
    photo = sorted((tree / "happy").iterdir())[0]
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for victim in (photo, notes):
        assert_refused(["enroll", "--images", tree, "--out", victim, "--force"], capsys,
                       tmp_path, "is not a fer-edge profile", "--force replaces only profiles")
    out = tmp_path / "me.fer"
    out.write_bytes(b"")  # an empty placeholder is replaced
    assert main(["enroll", "--images", str(tree), "--out", str(out), "--force"]) == 0
    out.write_bytes(out.read_bytes()[:100])  # a truncated profile too
    assert main(["enroll", "--images", str(tree), "--out", str(out), "--force"]) == 0
    assert load_profile(out).shots == {"happy": 2, "neutral": 2}
    from fer_edge.errors import OutputError
    with pytest.raises(OutputError, match="not a fer-edge profile"):  # the API refuses it too
        load_profile(out).save(notes, force=True)
    assert notes.read_text() == "my notes\n"


class _Face:
    """What ``judge`` reads of a face: its crop (and the box, for the overlay)."""

    def __init__(self, crop: np.ndarray):
        self.crop, self.box = crop, (0, 0, 48, 48)


def _timeline(seconds: float, fps: float) -> list[tuple[np.ndarray, float]]:
    """(frame, ts) of a synthetic session: each frame a distinct sharp texture whose first
    pixel row encodes its frame number (read back by the fake finder)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(int(seconds * fps)):
        img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        img[0, :2, 0] = divmod(i, 256)
        out.append((img, i / fps))
    return out


class _Source(list):
    name = "clip.avi"


def _finder(frame: np.ndarray) -> list:
    return [_Face(np.ascontiguousarray(frame[:, :, 0]))]


def _kept_times(session, fps: float) -> list[float]:
    return [(256 * int(c[0, 0]) + int(c[0, 1])) / fps for c in session.crops]


@pytest.mark.parametrize("per", [1, 2, 5])
def test_guided_schedule_keeps_frames_only_in_each_expressions_hold(per):
    """Expression k is asked from k * SLOT_S; frames are kept only in its last HOLD_S, per of
    them, the j-th from j * HOLD_S / per into it: a recording that follows the schedule gives
    each expression its own frames, at 10 or 4 FPS."""
    from fer_edge.personal.guided import run_session

    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    for fps in (10.0, 4.0):
        session = run_session(_Source(_timeline(7 * SLOT_S + 1, fps)), _finder, labels, per)
        assert session.skipped == [] and len(session.crops) == 7 * per
        times = _kept_times(session, fps)
        for k, e in enumerate(ORDER):
            mine = [t for t, y in zip(times, session.y) if labels[y] == e]
            hold = k * SLOT_S + COUNTDOWN_S
            assert len(mine) == per
            assert all(hold + j * HOLD_S / per <= t < min(hold + (j + 1) * HOLD_S / per + 1 / fps,
                                                        (k + 1) * SLOT_S)
                       for j, t in enumerate(mine)), (e, mine)


def test_guided_source_ending_in_the_last_hold_keeps_what_it_has():
    """The last expression ends the session when its frames are kept, or when the source
    ends during its hold (what it has is kept); ending in any earlier slot writes nothing."""
    from fer_edge.errors import SourceError
    from fer_edge.personal.guided import run_session

    labels = ("happy", "neutral")
    fps = 4.0
    cut = _timeline(SLOT_S + COUNTDOWN_S + 0.5, fps)  # neutral, then 0.5 s of happy's hold
    session = run_session(_Source(cut), _finder, labels, 5)
    assert [labels[y] for y in session.y] == ["neutral"] * 5 + ["happy"]
    with pytest.raises(SourceError, match="ended during 'neutral'"):
        run_session(_Source(_timeline(COUNTDOWN_S + 1, fps)), _finder, labels, 5)
    with pytest.raises(SourceError, match="ended during 'happy'"):
        run_session(_Source(_timeline(SLOT_S + 1, fps)), _finder, labels, 5)


def test_guided_live_session_draws_the_prompt_and_takes_keys(monkeypatch):
    """The window path (never run here on a real camera): each frame is shown with the prompt
    drawn on it, "s" skips to the next expression at once and drops the frames kept for the
    skipped one, "q" cancels."""
    from fer_edge.personal import guided

    shown, keys = [], {}
    monkeypatch.setattr(guided.cv2, "imshow", lambda name, frame: shown.append(frame.copy()))
    monkeypatch.setattr(guided.cv2, "waitKey", lambda ms: keys.get(len(shown), -1))
    labels = ("happy", "neutral")
    fps = 4.0
    timeline = _timeline(2 * SLOT_S + 1, fps)
    plain = [f.copy() for f, _ in timeline]
    skip = round((COUNTDOWN_S + 0.25) * fps) + 1  # "s" at 3.25 s: neutral kept its 1st frame
    keys[skip] = ord("s")
    session = guided.run_session(_Source(timeline), _finder, labels, 2, headless=False)
    assert session.skipped == ["neutral"] and [labels[y] for y in session.y] == ["happy"] * 2
    # happy starts at once; the session ends on its 2nd frame, HOLD_S / 2 into its hold
    assert len(shown) == round(((skip - 1) / fps + COUNTDOWN_S + HOLD_S / 2) * fps) + 1
    assert all((a != b).any() for a, b in zip(shown, plain))  # the prompt is drawn on each
    keys.clear()
    keys[3] = ord("q")
    shown.clear()
    with pytest.raises(KeyboardInterrupt):
        guided.run_session(_Source(_timeline(2 * SLOT_S + 1, fps)), _finder, labels, 2,
                           headless=False)
    assert len(shown) == 3


def test_guided_video_never_opens_a_window(tmp_path, monkeypatch, capsys):
    """A recording runs on its own clock: even with a GUI OpenCV and no --headless, no window
    (it would play as fast as it decodes, and a key could not move its schedule)."""
    from fer_edge.demo import overlay
    from fer_edge.personal import guided

    def no_window(*args):
        raise AssertionError("a window was opened for a --video session")

    monkeypatch.setattr(overlay, "has_gui", lambda: True)
    monkeypatch.setattr(guided.cv2, "imshow", no_window)
    photos = tfeid_person("03")
    clip = tmp_path / "session.avi"
    write_clip(clip, session_frames(photos, 1), fps=2.0)
    out = tmp_path / "p.fer"
    assert main(["enroll", "--video", str(clip), "--per-expression", "1", "--out", str(out)]) == 0
    assert load_profile(out).shots == {e: 1 for e in ORDER}
