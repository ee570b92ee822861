"""``fer-edge evaluate``: the parity check on any build, on any device. Light tier."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fer_edge.config import MAX_THREADS, number
from fer_edge.errors import AccuracyGateError, ConfigError, ModelFileError
from fer_edge.gate import CLASS_CORRECTIONS, Gate

log = logging.getLogger(__name__)

_GATE = Gate()  # the gate's defaults: one definition, shared with `fer-edge convert`


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate", help="per-class accuracy of exported builds (no TensorFlow needed)",
        description="Run builds on a dataset split through the light runtime and report "
                    "per-class recall; with --reference, compare each build with it and apply "
                    "the same gate as `fer-edge convert` (exit 3 on failure). With --people "
                    "instead of --data: accuracy per class and per person on photos of people, "
                    "each through the whole pipeline.")
    p.add_argument("builds", nargs="+", help=".tflite / .onnx files")
    p.add_argument("--data", help="fer2013.csv / .npz / Kaggle folders")
    p.add_argument("--people", help="instead of --data: a folder of people's photos "
                   "(<person>/<class>/*.jpg, or TFEID names PPTVEnn.jpg), each photo through "
                   "the whole pipeline (detect, align, crop, classify; largest face; a missed "
                   "face is wrong), scored per person; no gate")
    p.add_argument("--detector", default="auto", help="--people: the face detector (default "
                   "auto, as the demo)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="split to evaluate (default: test = PrivateTest)")
    p.add_argument("--labels", default="fer2013", choices=("fer2013", "ferplus-majority"),
                   help="score against the FER-2013 labels or the FER+ plurality labels "
                        "(needs --ferplus; faces FER+ drops are left out)")
    p.add_argument("--ferplus", default="", help="FER+ fer2013new.csv, row-aligned with --data")
    p.add_argument("--skip-unknown-classes", action="store_true",
                   help="class-folder data: skip folders naming no FER-2013 class (contempt)")
    p.add_argument("--reference", help="a build to compare against (e.g. the fp32 TFLite)")
    p.add_argument("--profile", default="",
                   help="personal profile from `fer-edge enroll`: score the builds with it (it "
                        "must have been made with each of them; --reference stays plain)")
    p.add_argument("--limit", type=number(int), default=0, help="at most N faces (0 = all)")
    p.add_argument("--threads", type=number(int, ge=1, le=MAX_THREADS), default=None,
                   help="runtime threads (default all cores)")
    p.add_argument("--max-drop-pp", type=number(float, le=100), default=_GATE.max_drop_pp,
                   help=f"gate: overall drop, pp (default {_GATE.max_drop_pp})")
    p.add_argument("--max-class-p", type=number(float, ge=None, gt=0, le=1),
                   default=_GATE.max_class_p,
                   help=f"gate: McNemar p below which a worse class fails (default "
                        f"{_GATE.max_class_p})")
    p.add_argument("--min-agreement", type=number(float, le=1), default=_GATE.min_agreement,
                   help=f"gate: min argmax agreement with --reference, 0 = off (default "
                        f"{_GATE.min_agreement})")
    p.add_argument("--class-correction", default=_GATE.class_correction,
                   choices=CLASS_CORRECTIONS,
                   help="gate: correct per-class p values for testing every class (holm)")
    p.add_argument("--latency-runs", type=number(int, ge=1), default=50,
                   help="timed batch-1 runs per build")
    p.add_argument("--out", help="folder for report.md/.json (and PNG plots where matplotlib "
                   "is installed); default: print only")
    p.add_argument("--force", action="store_true", help="replace a report already in --out")
    return p


def run(args: argparse.Namespace) -> int:
    if bool(args.data) == bool(args.people):
        raise ConfigError("pass --data (a FER-2013 layout) or --people (a folder of people's "
                          "photos), one of the two")
    if args.out:  # before the (long) evaluation, so nothing is lost at the end
        _check_out(args)
    return run_people(args) if args.people else run_data(args)


def run_data(args: argparse.Namespace) -> int:
    """``--data``: the parity check of every build on a FER-2013 split (exit 3 on a failure)."""
    from fer_edge.data import load_dataset_for
    from fer_edge.evaluate import build_facts, compare, predict_all, render_md, write_report
    from fer_edge.preprocess import to_model_input
    from fer_edge.runtime import load_predictor

    _check_data_args(args)
    preds = {Path(b).name: load_predictor(b, args.threads) for b in args.builds}
    profiled = _use_profile(preds, args.profile)
    labels = next(iter(preds.values())).spec.labels
    ds = load_dataset_for(args.data, labels, skip_unknown_classes=args.skip_unknown_classes,
                          need=(args.split,))
    if args.labels != "fer2013":
        from fer_edge.data.ferplus import apply_labels

        apply_labels(ds, args.labels, args.ferplus)
    for note in ds.notes:
        log.info("data: %s", note)
    x, y = ds.images[args.split], ds.labels[args.split]
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    for name, p in preds.items():
        if p.spec.labels != labels:
            raise ConfigError(f"{name}: its labels differ from the other builds'")
    ref = _reference_probs(args, labels, x)
    probs = {n: predict_all(p, x) for n, p in preds.items()}
    facts = {n: build_facts(Path(b), preds[n], to_model_input(x[:1], preds[n].spec),
                            args.latency_runs) for n, b in zip(preds, args.builds)}
    gate = Gate(args.max_drop_pp, args.max_class_p, args.min_agreement, args.class_correction)
    result = compare(labels, y, probs, ref, Path(args.reference).name if ref is not None else "",
                     gate)
    title = f"Evaluation on {Path(args.data).name}, {args.split} split" + (
        f", FER+ majority labels ({Path(args.ferplus).name})" if args.labels != "fer2013" else "")
    title += profiled
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_report(Path(args.out), result, facts, title)
    print(render_md(result, facts, title))
    fails = [m for e in result["builds"].values() for m in e["failures"]]
    if fails:
        raise AccuracyGateError("; ".join(fails[:3]))
    return 0


def _check_data_args(args: argparse.Namespace) -> None:
    """``--labels`` other than fer2013 has ``--ferplus``; no build or reference is a folder."""
    from fer_edge.evaluate import folder_as_build

    if args.labels != "fer2013" and not args.ferplus:
        raise ConfigError(f"--labels {args.labels} needs --ferplus PATH/fer2013new.csv")
    for b in [*args.builds, *([args.reference] if args.reference else [])]:
        if Path(b).is_dir():
            raise ModelFileError(folder_as_build(b, "--reference " if b == args.reference
                                                 else ""))


def _reference_probs(args: argparse.Namespace, labels, x):
    """(N, C) probabilities of ``--reference`` on faces ``x`` (N, h, w) uint8 grey, or None
    without one; its labels must be the builds'."""
    if not args.reference:
        return None
    from fer_edge.evaluate import predict_all
    from fer_edge.runtime import load_predictor

    rp = load_predictor(args.reference, args.threads)
    if rp.spec.labels != labels:
        raise ConfigError(f"{args.reference}: its labels differ from the builds'")
    return predict_all(rp, x, desc=Path(args.reference).name)


def _check_out(args: argparse.Namespace) -> None:
    """--out must be a writable folder without a report in it (unless --force)."""
    from fer_edge.io import check_output_dir

    out = check_output_dir(args.out, "--out")
    taken = [f for f in ("report.json", "report.md") if (out / f).exists()]
    if taken and not args.force:
        raise ConfigError(f"--out {out}: holds a report ({taken[0]}); pass --force to "
                          "replace it, or choose another folder")


def run_people(args: argparse.Namespace) -> int:
    """``--people DIR``: every build on every labelled photo, whole pipeline, per person."""
    import json

    from fer_edge.data.people import scan_people
    from fer_edge.evaluate_people import people_report, predict_photos, render_people_md
    from fer_edge.io import atomic_write_text
    from fer_edge.runtime import load_predictor

    photos, skipped = scan_people(args.people)
    if args.limit:
        photos = photos[:args.limit]
    log.info("%s: %d labelled photos of %d people (%d unlabelled skipped)", args.people,
             len(photos), len({p.person for p in photos}), skipped)
    reports = {}
    for b in args.builds:
        pred = load_predictor(b, args.threads)
        note = _use_profile({Path(b).name: pred}, args.profile)
        probs, found = predict_photos(pred, photos, args.detector)
        reports[Path(b).name] = people_report(photos, probs, found, pred.spec.labels)
    title = f"Evaluation on the people of {Path(args.people).name}, whole pipeline" + note
    text = render_people_md(reports, title)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.out) / "report.json", json.dumps(
            {"people": str(args.people), "detector": str(args.detector),
             "builds": reports}, indent=2) + "\n")
        atomic_write_text(Path(args.out) / "report.md", text)
    print(text)
    return 0


def _use_profile(preds: dict, path: str) -> str:
    """Personalise every build with the ``fer-edge enroll`` profile at ``path`` (none when
    empty); returns the report title's note (", personal profile NAME" or "").

    Raises:
        ProfileError: a damaged profile, or one made for another model than a build.
    """
    if not path:
        return ""
    from fer_edge.personal.profile import load_profile

    profile = load_profile(path)
    for p in preds.values():
        p.use_profile(profile)
    log.info("personal profile %s active on %s", path, ", ".join(preds))
    return f", personal profile {Path(path).name}"
