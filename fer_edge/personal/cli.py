"""``fer-edge enroll``: calibrate the model to one person and write their profile. Light tier."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from fer_edge.config import MAX_THREADS, number
from fer_edge.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    from fer_edge.personal.guided import PER_EXPRESSION

    p = sub.add_parser(
        "enroll", help="calibrate the model to one person: write a profile for --profile",
        description="Fit a personal profile from photos of one person (--images DIR of "
                    "<expression>/ folders) or a guided session (--camera N / --video F: the "
                    "overlay asks for one expression at a time). The profile holds no image; "
                    "use it with `fer-edge demo --profile`, `fer-edge evaluate --profile` or "
                    "fer_edge.load(profile=...).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="DIR",
                     help="DIR/<expression>/ photos (happy/, sad/, ... or synonyms such as "
                          "anger/, sadness/); an expression with no folder is not enrolled")
    src.add_argument("--camera", type=number(int, ge=0), metavar="N",
                     help="guided session on camera N")
    src.add_argument("--video", metavar="F", help="guided session on a video file")
    p.add_argument("--out", required=True, help="the profile file to write (exactly this path)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--model", default="", help=".tflite/.onnx build; default the packaged model")
    p.add_argument("--detector", default="auto", help="face detector, as in fer-edge demo")
    p.add_argument("--headless", action="store_true",
                   help="guided session without a window: no countdown, frames taken in "
                        "order for each expression in turn (for recorded videos and tests)")
    p.add_argument("--per-expression", type=number(int, ge=1, le=50), default=PER_EXPRESSION,
                   help=f"guided session: frames kept per expression (default {PER_EXPRESSION})")
    p.add_argument("--frame-size", default="640x480", help="camera frame size WxH")
    p.add_argument("--threads", type=number(int, ge=0, le=MAX_THREADS), default=0,
                   help="classifier threads (0 = all cores)")
    return p


def run(args: argparse.Namespace) -> int:
    from fer_edge.io import check_output_file
    from fer_edge.runtime import load_predictor

    out = check_output_file(args.out, "--out", args.force, renames=True)  # before any work
    t0 = time.perf_counter()
    predictor = load_predictor(args.model or None, args.threads or None)
    finder = predictor.finder(args.detector)
    crops, y, where = _collect(args, predictor, finder)
    t1 = time.perf_counter()
    from fer_edge.personal.enroll import enrol_crops

    profile = enrol_crops(predictor, crops, y)
    profile.save(out, force=args.force)
    t2 = time.perf_counter()
    missing = [lab for lab in predictor.spec.labels if lab not in profile.shots]
    print(f"profile written to {out} ({out.stat().st_size / 1024:.1f} kB, mode 0600, model "
          f"sha256 {profile.model_sha256[:12]}..) from {len(y)} face(s) of {where}: "
          + ", ".join(f"{k} {v}" for k, v in profile.shots.items())
          + (f"; not enrolled (left to the model): {', '.join(missing)}" if missing else "")
          + f"; faces {t1 - t0:.2f} s, fit {t2 - t1:.2f} s")
    return 0


def _collect(args, predictor, finder):
    """(crops, class ids, description of the source) from --images or a guided session."""
    import numpy as np

    labels = tuple(predictor.spec.labels)
    if args.images:
        from fer_edge.personal.enroll import crops_from_folders

        crops, y, info = crops_from_folders(finder, args.images, labels)
        if info["no_face"]:
            log.info("no face found in %d of %d photos (skipped): %s", len(info["no_face"]),
                     info["photos"], ", ".join(Path(f).name for f in info["no_face"][:5]))
        return crops, y, f"{info['photos']} photos"
    session = _guided(args, finder, labels)
    if not session.crops:
        raise DataError("the guided session kept no face (every expression skipped, or no "
                        "sharp face found); face the camera in good light and try again")
    log.info("frames rejected: %s", session.rejected)
    return np.stack(session.crops), np.array(session.y, np.int64), "a guided session"


def _guided(args, finder, labels):
    from fer_edge.demo.overlay import has_gui
    from fer_edge.demo.sources import CameraSource, VideoSource, parse_size
    from fer_edge.personal.guided import run_session

    headless = args.headless or not has_gui()
    if args.camera is not None and headless:
        raise ConfigError("a --camera session needs a window (the overlay asks for each "
                          "expression); use a GUI OpenCV (pip install 'opencv-python<5'), or "
                          "record a video and use --video F --headless")
    source = (VideoSource(args.video) if args.video
              else CameraSource(args.camera, parse_size(args.frame_size)))
    try:
        return run_session(source, finder, labels, args.per_expression, headless)
    finally:
        source.close()
        if not headless:
            import cv2

            cv2.destroyAllWindows()
