"""``fer-edge benchmark``: measure builds on this machine and write one CSV. Light tier.

Per build and thread count: size, sha256, classifier latency (batch 1, one forward pass,
median and p90), end-to-end demo FPS (median, min and max over repeated passes of at least
3 s) and per-stage ms on a fixed 640x480 video (default: the packaged sample clip), and, with
``--data``, accuracy and macro-F1 on a split. Each build and thread count is measured in a
fresh process (``fer_edge.bench.one``) that loads only that build, so its peak memory is its
own. One CSV per run in ``--out`` (default: the current directory), named
``<date>_<host>_<git sha>.csv`` (``_2``, ``_3``, ... when that name is taken: a CSV is never
replaced), with the machine described in its columns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from fer_edge.bench.config import MIN_VIDEO_FRAMES, BenchmarkConfig
from fer_edge.config import add_config_parser, config_from_args

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    return add_config_parser(
        sub, "benchmark", BenchmarkConfig, help="size, latency, accuracy and FPS of builds",
        description="Measure builds on this machine (size, batch-1 latency, end-to-end demo "
                    "FPS, peak memory, and accuracy with --data), each build and thread count "
                    "in a fresh process that loads only it, and write one CSV. --config reads "
                    "the [benchmark] table.")


def check_video(video: str) -> None:
    """Refuse, before any timing, a ``--video`` that is missing, a folder, unreadable or too
    short for a frame rate ('' skips the end-to-end FPS; 'sample' is the packaged clip).

    Raises:
        SourceError: one line naming the problem and what to pass instead.
    """
    import cv2

    from fer_edge.demo.sources import SAMPLE_CLIP
    from fer_edge.errors import SourceError

    if not video:
        return
    path = SAMPLE_CLIP if video == "sample" else Path(video)
    fix = "pass a longer clip, sample (the packaged clip) or '' to skip the end-to-end FPS"
    if path.is_dir():
        raise SourceError(f"--video {video}: is a folder, not a video file; {fix}")
    if not path.is_file():
        raise SourceError(f"--video {video}: video file not found; {fix}")
    cap = cv2.VideoCapture(str(path))
    try:
        frames = 0
        while frames < MIN_VIDEO_FRAMES and cap.grab():
            frames += 1
    finally:
        cap.release()
    if frames == 0:
        raise SourceError(f"--video {video}: cannot be read as a video; {fix}")
    if frames < MIN_VIDEO_FRAMES:
        raise SourceError(f"--video {video}: has only {frames} frame(s), too few for a frame "
                          f"rate (at least {MIN_VIDEO_FRAMES}); {fix}")


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True,
                              cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "nogit"


def _expand(paths: list[str]) -> list[Path]:
    from fer_edge.errors import ModelFileError

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix in (".tflite", ".onnx"))
        elif p.is_file():
            out.append(p)
        else:
            raise ModelFileError(f"{p}: no such build or folder")
    if not out:
        from fer_edge.evaluate import folder_as_build

        first = Path(paths[0])
        raise ModelFileError("no .tflite/.onnx builds found in " + ", ".join(paths) + (
            "; " + folder_as_build(first, "").split("; ", 1)[1] if first.is_dir() else ""))
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from fer_edge.bench.machine import machine_facts
    from fer_edge.evaluate import predict_all, sha256, size_mb
    from fer_edge.io import check_output_dir
    from fer_edge.metrics import classification_report
    from fer_edge.runtime import load_predictor

    cfg = config_from_args(BenchmarkConfig, args)
    cfg.validate()
    counts = cfg.thread_counts()
    out = check_output_dir(cfg.out, "--out")  # before measuring, not after
    check_video(cfg.video)
    builds = _expand(list(cfg.build_paths))
    for b in builds:  # every build loads, before the long part (then is let go)
        load_predictor(b, 1)
    data = None
    if cfg.data:
        from fer_edge.data import load_dataset

        ds = load_dataset(cfg.data, need=(cfg.split,))
        x, y = ds.images[cfg.split], ds.labels[cfg.split]
        data = (x[:cfg.limit], y[:cfg.limit]) if cfg.limit else (x, y)
    log.info("results go to %s (--out; default: the current directory)", out.resolve())
    facts = machine_facts()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        face = ""
        if data is not None and len(data[0]):
            face = str(Path(tmp) / "face.npy")
            np.save(face, data[0][:1])
        for b in builds:
            acc = {}
            if data is not None:
                pred = load_predictor(b)
                rep = classification_report(data[1], predict_all(pred, data[0]).argmax(1),
                                            pred.spec.labels)
                acc = {"accuracy": round(rep["accuracy"], 4),
                       "macro_f1": round(rep["macro_f1"], 4)}
            for n in counts:
                row = {"date": dt.date.today().isoformat(), "build": b.name,
                       "sha256": sha256(b)[:12], "mb": float(size_mb(b.stat().st_size)),
                       "threads": n, **_measure_fresh(b, n, cfg.runs, cfg.video, face), **acc}
                row.update(facts)
                rows.append(row)
                log.info("%s (%s MB), %d thread(s): %.2f ms median%s, peak %.0f MB", b.name,
                         size_mb(b.stat().st_size), n, row["latency_ms_median"],
                         f", {row['e2e_fps']} FPS end to end (median of {row['e2e_passes']} "
                         f"passes, {row['e2e_fps_min']}-{row['e2e_fps_max']})"
                         if cfg.video else "", row["peak_rss_mb"])
    path = write_unique_csv(out, f"{dt.date.today().isoformat()}_{facts['host'] or 'host'}_"
                                 f"{_git_sha()}", rows)
    print(f"wrote {path.resolve()}")
    return 0


def _measure_fresh(build: Path, threads: int, runs: int, video: str, face: str) -> dict:
    """:func:`fer_edge.bench.one.measure` in a new Python process (its own peak memory)."""
    from fer_edge.errors import FerEdgeError

    if video and video != "sample":
        video = str(Path(video).resolve())
    cmd = [sys.executable, "-m", "fer_edge.bench.one", str(build.resolve()), "--threads",
           str(threads), "--runs", str(runs), "--video", video, "--face", face]
    r = subprocess.run(cmd, capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise FerEdgeError(f"measuring {build.name} at {threads} thread(s) failed: {last}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def write_unique_csv(folder: Path, stem: str, rows: list[dict]) -> Path:
    """Write ``<stem>.csv`` in ``folder``, or ``<stem>_2.csv``, ... if taken (never replaces)."""
    from fer_edge.io import atomic_write_csv

    for k in range(1, 1000):
        path = folder / (f"{stem}.csv" if k == 1 else f"{stem}_{k}.csv")
        try:
            atomic_write_csv(path, rows, overwrite=False)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: 999 results named {stem}_*.csv already")
