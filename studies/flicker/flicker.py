"""Label flicker on real footage and lag on a real change, for the demo's old and current
tracking/smoothing defaults (the real demo loop, ``run_demo``, with its per-face log).

- Flicker: the Hamilton clip (``../shared/data/real/short_hamilton_clip.mp4``, 275 frames at
  29.97 fps); label changes per face per second = changes of the shown label within a track /
  (rows logged / fps), over all tracks.
- Box following on the same clip: the boxes the demo logs (carried by tracks between
  detection rounds) against the config's detector run afresh on every frame; per fresh face,
  the IoU of the best logged box on that frame (0 when none): median and share >= 0.5.
- Lag: a spliced clip (30 fps, 640x480): FER-2013 PrivateTest faces the model classifies
  confidently (tight crop, top probability >= 0.6), each pasted at the same 160-px box on the
  same background for ``--segment`` seconds, consecutive faces with different predicted
  labels. At each splice the face really changes; the lag is the video time from the splice
  to the first frame whose shown label is the one the demo shows at the end of that segment
  (segments whose final label equals the previous one are skipped; a segment that never
  settles counts as lag = segment length).

Writes ``studies/flicker/results/flicker.csv``.

    python studies/flicker/flicker.py --data ../shared/data/fer2013.npz
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from fer_edge.data.paste import background, paste
from fer_edge.demo.config import DemoConfig
from fer_edge.demo.loop import run_demo
from fer_edge.demo.sources import VideoSource
from fer_edge.demo.tracking import iou
from fer_edge.detect import build_detector
from fer_edge.io import atomic_write_csv
from fer_edge.runtime import load_predictor

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the repository; the shared data sits beside it
RESULTS = HERE / "results" / "flicker.csv"
CLIP = ROOT.parent / "shared" / "data" / "real" / "short_hamilton_clip.mp4"
CONFIGS = {
    "old defaults": {"detector": "haar", "flip_tta": "model", "detect_every": 3,
                     "classify_every": 2, "keep_alive": 0, "align": False, "ema": 0.35,
                     "hysteresis": 0.08},
    "current defaults": {},
    "current, TTA every round": {"flip_tta": "model"},
    "current, no second pass": {"detector": "blazeface-full"},
    "current, classify every 6th frame": {"classify_every": 6},
    "detect every 3rd, classify every 4th (defaults before 2026-12-02)":
        {"detect_every": 3, "classify_every": 4},
    "detect every 3rd, classify every 5th": {"detect_every": 3, "classify_every": 5},
    "detect every 4th, classify every 4th": {"detect_every": 4, "classify_every": 4},
}


def read_log(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def flicker(rows: list[dict], fps: float) -> tuple[int, float, int]:
    """(label changes, face-seconds, tracks) of a demo log."""
    by = defaultdict(list)
    for r in rows:
        by[r["face_id"]].append(r["label"])
    changes = sum(sum(a != b for a, b in zip(s, s[1:])) for s in by.values())
    return changes, len(rows) / fps, len(by)


def fresh_boxes(detector: str) -> list[list[tuple]]:
    """The detector (no second-pass reuse) on every frame of the clip, read by the demo's
    own video source so frame numbers match its log: [[(x, y, w, h)]]."""
    det = build_detector(detector)
    src = VideoSource(str(CLIP))
    try:
        return [[d.box for d in det.detect_faces(frame)] for frame, _ in src]
    finally:
        src.close()


def following(rows: list[dict], fresh: list[list[tuple]]) -> tuple[float, float]:
    """(median IoU, share with IoU >= 0.5) of each fresh face's best logged box."""
    logged = defaultdict(list)
    for r in rows:
        logged[int(r["frame"])].append(tuple(float(r[k]) for k in ("x", "y", "w", "h")))
    best = [max((iou(b, lb) for lb in logged[f]), default=0.0)
            for f, boxes in enumerate(fresh) for b in boxes]
    return float(np.median(best)), float(np.mean(np.array(best) >= 0.5))


def spliced_clip(path: Path, faces: np.ndarray, seconds: float, fps: int = 30) -> list[int]:
    """Write the spliced clip; returns the first frame of every segment."""
    rng = np.random.default_rng(0)
    bg = background(rng, 480, 640)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    starts, n = [], int(round(seconds * fps))
    for k, face in enumerate(faces):
        starts.append(k * n)
        frame = paste(face, 160, (320, 240), 0.0, bg.copy())
        for _ in range(n):
            w.write(frame)
    w.release()
    return starts


def lags(rows: list[dict], starts: list[int], n: int, fps: int) -> list[float]:
    shown = {int(r["frame"]): r["label"] for r in rows}
    out = []
    for k in range(1, len(starts)):
        s = starts[k]
        end_label = shown.get(s + n - 1)
        prev_label = shown.get(s - 1)
        if end_label is None or prev_label is None or end_label == prev_label:
            continue
        f = next((i for i in range(s, s + n) if shown.get(i) == end_label
                  and all(shown.get(j) == end_label for j in range(i, s + n))), s + n)
        out.append((f - s) / fps)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="fer2013.npz")
    ap.add_argument("--model", default="")
    ap.add_argument("--faces", type=int, default=40, help="faces in the spliced clip")
    ap.add_argument("--segment", type=float, default=1.5, help="seconds per face")
    ap.add_argument("--configs", default="", help="comma-separated config numbers (0 = the "
                    "first of CONFIGS; default all); with a subset the CSV is --out's")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not CLIP.is_file() or not Path(args.data).is_file():
        sys.exit(f"flicker: {CLIP} or {args.data} not found")
    pred = load_predictor(args.model or None, 1)
    d = np.load(args.data)
    test = np.flatnonzero(d["usage"] == 2)
    p = pred.predict(d["images"][test])
    conf = np.flatnonzero(p.max(1) >= 0.6)
    chosen, last = [], -1
    for i in conf:
        if p[i].argmax() != last:
            chosen.append(i)
            last = p[i].argmax()
        if len(chosen) == args.faces:
            break
    fps = 30
    n = int(round(args.segment * fps))
    rows, fresh = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        splice = Path(tmp) / "spliced.avi"
        starts = spliced_clip(splice, d["images"][test[chosen]], args.segment, fps)
        pick = {int(c) for c in args.configs.split(",")} if args.configs else None
        for k, (name, over) in enumerate(CONFIGS.items()):
            if pick is not None and k not in pick:
                continue
            flog, llog = Path(tmp) / f"clip{k}.csv", Path(tmp) / f"splice{k}.csv"
            run_demo(DemoConfig(video=str(CLIP), headless=True, log=str(flog), threads=1,
                                **over), predictor=pred)
            clip_rows = read_log(flog)
            changes, face_s, tracks = flicker(clip_rows, 29.97)
            cfg = DemoConfig(**over)
            if cfg.detector not in fresh:
                fresh[cfg.detector] = fresh_boxes(cfg.detector)
            box_iou, box_share = following(clip_rows, fresh[cfg.detector])
            run_demo(DemoConfig(video=str(splice), headless=True, log=str(llog), threads=1,
                                **over), predictor=pred)
            lg = lags(read_log(llog), starts, n, fps)
            row = {"date": dt.date.today().isoformat(), "config": name,
                   "detector": cfg.detector, "flip_tta": cfg.flip_tta,
                   "detect_every": cfg.detect_every,
                   "classify_every": cfg.classify_every, "keep_alive": cfg.keep_alive,
                   "ema": cfg.ema, "hysteresis": cfg.hysteresis,
                   "clip_label_changes": changes, "clip_face_seconds": round(face_s, 2),
                   "clip_tracks": tracks,
                   "changes_per_face_s": round(changes / face_s, 3) if face_s else "",
                   "box_iou_median": round(box_iou, 3), "box_iou_ge_0.5": round(box_share, 3),
                   "splices_measured": len(lg), "splices": len(starts) - 1,
                   "lag_s_median": round(float(np.median(lg)), 3) if lg else "",
                   "lag_s_p90": round(float(np.percentile(lg, 90)), 3) if lg else "",
                   "lag_s_max": round(float(np.max(lg)), 3) if lg else ""}
            print(row)
            rows.append(row)
    atomic_write_csv(Path(args.out), rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
