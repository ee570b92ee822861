"""``fer-edge evaluate``: the parity check on any build, on any device. Light tier."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fer_edge.config import add_config_parser, config_from_args
from fer_edge.errors import AccuracyGateError, ConfigError, ModelFileError
from fer_edge.evaluate_config import EvaluateConfig
from fer_edge.options import DEFAULT_LABELS

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(
        sub, "evaluate", EvaluateConfig,
        help="per-class accuracy of exported builds (no TensorFlow needed)",
        description="Run builds on a dataset split through the light runtime and report "
                    "per-class recall; with --reference, compare each build with it and apply "
                    "the same gate as `fer-edge convert` (exit 3 on failure). With --people "
                    "instead of --data: accuracy per class and per person on photos of people, "
                    "each through the whole pipeline. --config reads the [evaluate] table.")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(EvaluateConfig, args)
    cfg.validate()
    if cfg.out:  # before the (long) evaluation, so nothing is lost at the end
        _check_out(cfg)
    return run_people(cfg) if cfg.people else run_data(cfg)


def run_data(cfg: EvaluateConfig) -> int:
    """``--data``: the parity check of every build on a FER-2013 split (exit 3 on a failure)."""
    from fer_edge.data import load_dataset_for
    from fer_edge.evaluate import build_facts, compare, predict_all, render_md, write_report
    from fer_edge.preprocess import to_model_input
    from fer_edge.runtime import load_predictor

    _check_data_args(cfg)
    preds = {Path(b).name: load_predictor(b, cfg.threads) for b in cfg.build_paths}
    profiled = _use_profile(preds, cfg.profile)
    labels = next(iter(preds.values())).spec.labels
    ds = load_dataset_for(cfg.data, labels, skip_unknown_classes=cfg.skip_unknown_classes,
                          need=(cfg.split,))
    if cfg.labels != DEFAULT_LABELS:
        from fer_edge.data.ferplus import apply_labels

        apply_labels(ds, cfg.labels, cfg.ferplus)
    for note in ds.notes:
        log.info("data: %s", note)
    x, y = ds.images[cfg.split], ds.labels[cfg.split]
    if cfg.limit:
        x, y = x[:cfg.limit], y[:cfg.limit]
    for name, p in preds.items():
        if p.spec.labels != labels:
            raise ConfigError(f"{name}: its labels differ from the other builds'")
    ref = _reference_probs(cfg, labels, x)
    probs = {n: predict_all(p, x) for n, p in preds.items()}
    facts = {n: build_facts(Path(b), preds[n], to_model_input(x[:1], preds[n].spec),
                            cfg.latency_runs) for n, b in zip(preds, cfg.build_paths)}
    result = compare(labels, y, probs, ref, Path(cfg.reference).name if ref is not None else "",
                     cfg.gate())
    title = f"Evaluation on {Path(cfg.data).name}, {cfg.split} split" + (
        f", FER+ majority labels ({Path(cfg.ferplus).name})"
        if cfg.labels != DEFAULT_LABELS else "")
    title += profiled
    if cfg.out:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        write_report(Path(cfg.out), result, facts, title)
    print(render_md(result, facts, title))
    fails = [m for e in result["builds"].values() for m in e["failures"]]
    if fails:
        raise AccuracyGateError("; ".join(fails[:3]))
    return 0


def _check_data_args(cfg: EvaluateConfig) -> None:
    """``--labels`` other than fer2013 has ``--ferplus``; no build or reference is a folder."""
    from fer_edge.evaluate import folder_as_build

    cfg.check_data_labels()
    for b in [*cfg.build_paths, *([cfg.reference] if cfg.reference else [])]:
        if Path(b).is_dir():
            raise ModelFileError(folder_as_build(b, "--reference " if b == cfg.reference
                                                 else ""))


def _reference_probs(cfg: EvaluateConfig, labels, x):
    """(N, C) probabilities of ``--reference`` on faces ``x`` (N, h, w) uint8 grey, or None
    without one; its labels must be the builds'."""
    if not cfg.reference:
        return None
    from fer_edge.evaluate import predict_all
    from fer_edge.runtime import load_predictor

    rp = load_predictor(cfg.reference, cfg.threads)
    if rp.spec.labels != labels:
        raise ConfigError(f"{cfg.reference}: its labels differ from the builds'")
    return predict_all(rp, x, desc=Path(cfg.reference).name)


def _check_out(cfg: EvaluateConfig) -> None:
    """--out must be a writable folder without a report in it (unless --force)."""
    from fer_edge.io import check_output_dir

    out = check_output_dir(cfg.out, "--out")
    taken = [f for f in ("report.json", "report.md") if (out / f).exists()]
    if taken and not cfg.force:
        raise ConfigError(f"--out {out}: holds a report ({taken[0]}); pass --force to "
                          "replace it, or choose another folder")


def run_people(cfg: EvaluateConfig) -> int:
    """``--people DIR``: every build on every labelled photo, whole pipeline, per person."""
    import json

    from fer_edge.data.people import scan_people
    from fer_edge.evaluate_people import people_report, predict_photos, render_people_md
    from fer_edge.io import atomic_write_text
    from fer_edge.runtime import load_predictor

    photos, skipped = scan_people(cfg.people)
    if cfg.limit:
        photos = photos[:cfg.limit]
    log.info("%s: %d labelled photos of %d people (%d skipped: unlabelled or outside a "
             "<class>/ folder)", cfg.people, len(photos), len({p.person for p in photos}), skipped)
    reports = {}
    for b in cfg.build_paths:
        pred = load_predictor(b, cfg.threads)
        note = _use_profile({Path(b).name: pred}, cfg.profile)
        probs, found = predict_photos(pred, photos, cfg.detector)
        reports[Path(b).name] = people_report(photos, probs, found, pred.spec.labels)
    title = f"Evaluation on the people of {Path(cfg.people).name}, whole pipeline" + note
    text = render_people_md(reports, title)
    if cfg.out:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(cfg.out) / "report.json", json.dumps(
            {"people": str(cfg.people), "detector": str(cfg.detector),
             "builds": reports}, indent=2) + "\n")
        atomic_write_text(Path(cfg.out) / "report.md", text)
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
