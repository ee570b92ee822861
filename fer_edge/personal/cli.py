"""``fer-edge enroll``: calibrate the model to one person and write their profile. Light tier."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from fer_edge.config import add_config_parser, config_from_args
from fer_edge.errors import ConfigError, DataError
from fer_edge.personal.config import EnrollConfig

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(
        sub, "enroll", EnrollConfig,
        help="calibrate the model to one person: write a profile for --profile",
        description="Fit a personal profile from photos of one person (--images DIR of "
                    "<expression>/ folders) or a guided session (--camera N / --picamera / "
                    "--video F: the overlay asks for one expression at a time, 3 s to change "
                    "face then 4 s held, 7 s each; a video follows the same schedule on its own "
                    "clock). The profile holds no image; use it with `fer-edge demo "
                    "--profile`, `fer-edge evaluate --profile` or fer_edge.load(profile=...). "
                    "--config reads an [enroll] table (flags override it).")


def run(args: argparse.Namespace) -> int:
    from fer_edge.io import check_output_file
    from fer_edge.personal.profile import check_replaceable
    from fer_edge.runtime import load_predictor

    cfg = config_from_args(EnrollConfig, args)
    cfg.validate()
    out = check_output_file(cfg.out, "--out", cfg.force, renames=True)  # before any work
    check_replaceable(out)
    t0 = time.perf_counter()
    predictor = load_predictor(cfg.model or None, cfg.threads or None)
    finder = predictor.finder(cfg.detector)
    crops, y, where = _collect(cfg, predictor, finder)
    t1 = time.perf_counter()
    from fer_edge.personal.enroll import enrol_crops
    from fer_edge.personal.method import Recipe

    profile = enrol_crops(predictor, crops, y, Recipe(share=cfg.share))
    profile.save(out, force=cfg.force)
    t2 = time.perf_counter()
    missing = [lab for lab in predictor.spec.labels if lab not in profile.shots]
    print(f"profile written to {out} ({out.stat().st_size / 1024:.1f} kB, mode 0600, model "
          f"sha256 {profile.model_sha256[:12]}..) from {len(y)} face(s) of {where}: "
          + ", ".join(f"{k} {v}" for k, v in profile.shots.items())
          + (f"; not enrolled (left to the model): {', '.join(missing)}" if missing else "")
          + f"; share of the vote {cfg.share:.2f} (up to 1 on faces like these shots); "
          f"faces {t1 - t0:.2f} s, fit {t2 - t1:.2f} s")
    return 0


def _collect(cfg: EnrollConfig, predictor, finder):
    """(crops, class ids, description of the source) from --images or a guided session."""
    import numpy as np

    labels = tuple(predictor.spec.labels)
    if cfg.images:
        from fer_edge.personal.enroll import crops_from_folders

        crops, y, info = crops_from_folders(finder, cfg.images, labels)
        if info["no_face"]:
            log.info("no face found in %d of %d photos (skipped): %s", len(info["no_face"]),
                     info["photos"], ", ".join(Path(f).name for f in info["no_face"][:5]))
        return crops, y, f"{info['photos']} photos"
    session = _guided(cfg, finder, labels)
    if not session.crops:
        raise DataError("the guided session kept no face (every expression skipped, or no "
                        "sharp face found); face the camera in good light and try again")
    log.info("frames rejected: %s", session.rejected)
    return np.stack(session.crops), np.array(session.y, np.int64), "a guided session"


def _guided(cfg: EnrollConfig, finder, labels):
    from fer_edge.demo.overlay import has_gui
    from fer_edge.demo.sources import CameraSource, PiCameraSource, VideoSource, parse_size
    from fer_edge.personal.guided import run_session, schedule

    # a recording runs on its own clock: no window (it would play as fast as it decodes, and
    # a key could not move its schedule)
    headless = bool(cfg.video) or cfg.headless or not has_gui()
    if not cfg.video and headless:
        raise ConfigError("a camera session needs a window (the overlay asks for each "
                          "expression); use a GUI OpenCV (pip install 'opencv-python<5'), or "
                          "record a video that follows the schedule and use --video F")
    if cfg.video:
        source = VideoSource(cfg.video)
    elif cfg.picamera:
        source = PiCameraSource(parse_size(cfg.frame_size))
    else:
        source = CameraSource(cfg.camera, parse_size(cfg.frame_size))
    log.info("guided session%s: %s", " on the video's clock" if cfg.video else "",
             schedule(labels))
    try:
        return run_session(source, finder, labels, cfg.per_expression, headless)
    finally:
        source.close()
        if not headless:
            import cv2

            cv2.destroyAllWindows()
