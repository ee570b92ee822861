"""Face detectors on real footage, real photos and pasted FER-2013 faces with known boxes.

For each detector (Haar with the old demo defaults, Haar on the full frame as the ``fer``
package runs it, BlazeFace short and full range, YuNet when ``--yunet FILE`` is given) and
each thread count, in a fresh process:

- the Hamilton clip (``../shared/data/real/short_hamilton_clip.mp4``, 275 frames, 640x360):
  frames with a face, faces per frame, median and p90 over frames of the detector's ms per
  frame (each frame timed ``TIMING_REPS`` times, fastest kept, so other jobs on a shared CPU
  inflate it less);
- the photos in ``../shared/data/real/`` (11 photos, 12 faces): faces found, photos where the
  count is right;
- FER-2013 PrivateTest faces pasted into 640x480 frames (``fer_edge.data.paste``; side
  30-300 px log-uniform, random position, in-plane rotation +-30 deg): recall (a box with IoU
  > 0.3 against the true face square), false boxes per frame (boxes matching no face), median
  IoU of the matched boxes. Counts are thread-independent and computed at the first thread
  count only.

Writes ``benchmarks/results/detectors.csv`` and a contact sheet of the default detector's
boxes on every 10th clip frame, ``benchmarks/results/detectors_contact_sheet.png``.

    python benchmarks/detectors.py --data ../shared/data/fer2013.npz --threads 1,2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REAL = ROOT.parent / "shared" / "data" / "real"
RESULTS = HERE / "results" / "detectors.csv"
SHEET = HERE / "results" / "detectors_contact_sheet.png"
#: name -> build_detector kwargs (or a Haar on the full frame like the ``fer`` package)
DETECTORS = {
    "haar-demo-old": {"name_or_path": "haar"},
    "haar-full-frame": "haar-full",
    "blazeface-short": {"name_or_path": "blazeface-short"},
    "blazeface-full": {"name_or_path": "blazeface-full"},
    "blazeface-full+refine": {"name_or_path": "blazeface-full+refine"},
}
#: each clip frame is timed this many times and the fastest run kept
TIMING_REPS = 3
#: faces in each photo of ../shared/data/real/
PHOTOS = {"alex-lacamoire.png": 1, "biden.jpg": 1, "lin-manuel-miranda.png": 1,
          "obama-1080p.jpg": 1, "obama-240p.jpg": 1, "obama-480p.jpg": 1, "obama-720p.jpg": 1,
          "obama.jpg": 1, "obama2.jpg": 1, "obama_and_biden.jpg": 2, "obama_small.jpg": 1}


def clip_frames() -> list:
    """Every frame of the Hamilton clip, (360, 640, 3) uint8 BGR, read by the demo's own
    video source."""
    from fer_edge.demo.sources import VideoSource

    src = VideoSource(str(REAL / "short_hamilton_clip.mp4"))
    try:
        return [f for f, _ in src]
    finally:
        src.close()


def make_detector(spec, threads: int):
    from fer_edge.faces import HaarFaceDetector, build_detector

    if spec == "haar-full":
        d = HaarFaceDetector(detect_width=0, scale_factor=1.1, min_neighbors=5, min_size=30)
        d.name = "haar"
        return d
    return build_detector(**spec, num_threads=threads)


def child(name: str, threads: int, counts: bool, data: str, n: int, yunet: str) -> dict:
    import time

    import cv2
    import numpy as np

    from fer_edge.data.paste import pasted_frames
    from fer_edge.demo.tracking import iou

    cv2.setNumThreads(threads)
    spec = {"name_or_path": yunet} if name == "yunet" else DETECTORS[name]
    det = make_detector(spec, threads)
    frames = clip_frames()
    det.detect_faces(frames[0])  # warm-up
    ms, hits, boxes = [], 0, 0
    for f in frames:
        best = float("inf")
        for _ in range(TIMING_REPS):  # min of a few runs: robust to other jobs on the CPU
            t0 = time.perf_counter()
            found = det.detect_faces(f)
            best = min(best, time.perf_counter() - t0)
        ms.append(best * 1e3)
        hits += bool(found)
        boxes += len(found)
    out = {"detector": name, "threads": threads, "clip_frames": len(frames),
           "clip_frames_with_face": hits, "clip_faces_per_frame": round(boxes / len(frames), 3),
           "clip_ms_median": round(float(np.median(ms)), 2),
           "clip_ms_p90": round(float(np.percentile(ms, 90)), 2)}
    if not counts:
        return out
    found, right = 0, 0
    for photo, want in PHOTOS.items():
        got = len(det.detect_faces(cv2.imread(str(REAL / photo))))
        found += min(got, want)
        right += got == want
    out.update({"photo_faces_found": f"{found}/{sum(PHOTOS.values())}",
                "photos_count_right": f"{right}/{len(PHOTOS)}"})
    if data:
        d = np.load(data)
        test = np.flatnonzero(d["usage"] == 2)
        faces = d["images"][test[:n]]
        rec, false, ious = 0, 0, []
        for p in pasted_frames(faces, seed=0, sides=(30, 300), max_angle=30):
            dets = det.detect_faces(p.frame)
            scores = [iou(b.box, p.box) for b in dets]
            k = int(np.argmax(scores)) if scores else -1
            if k >= 0 and scores[k] > 0.3:
                rec += 1
                ious.append(scores[k])
                false += len(dets) - 1
            else:
                false += len(dets)
        out.update({"pasted_n": len(faces), "pasted_recall": round(rec / len(faces), 4),
                    "pasted_false_per_frame": round(false / len(faces), 4),
                    "pasted_iou_median": round(float(np.median(ious)), 3) if ious else 0.0})
    return out


def contact_sheet(path: Path, every: int = 10, cols: int = 4, tile=(320, 180)) -> None:
    """The default detector's boxes (green, with score) on every ``every``-th clip frame."""
    import cv2
    import numpy as np

    from fer_edge.faces import build_detector

    det = build_detector("auto")
    tiles = []
    for i, f in enumerate(clip_frames()):
        if i % every == 0:
            for d in det.detect_faces(f):
                x, y, w, h = d.int_box()
                cv2.rectangle(f, (x, y), (x + w, y + h), (0, 255, 0), 2)
                cv2.putText(f, f"{d.score:.2f}", (x, max(14, y - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                            0.6, (0, 255, 0), 2)
                for kx, ky in d.keypoints[:2]:
                    cv2.circle(f, (int(kx), int(ky)), 2, (0, 0, 255), -1)
            cv2.putText(f, f"frame {i}", (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
            tiles.append(cv2.resize(f, tile, interpolation=cv2.INTER_AREA))
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[k:k + cols]) for k in range(0, len(tiles), cols)])
    sheet = (sheet // 8) * 8 + 4  # fewer distinct values: a much smaller PNG
    cv2.imwrite(str(path), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="", help="fer2013.npz (pasted-face columns)")
    ap.add_argument("--n", type=int, default=1000, help="PrivateTest faces to paste")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--yunet", default="", help="a YuNet .onnx to include")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, threads, counts = args.child.split(":")
        print("RESULT " + json.dumps(child(name, int(threads), counts == "1", args.data,
                                           args.n, args.yunet)))
        return 0
    if not (REAL / "short_hamilton_clip.mp4").is_file():
        sys.exit(f"detectors: {REAL} not found")
    if args.data and not Path(args.data).is_file():
        sys.exit(f"detectors: --data {args.data} not found; pass fer2013.npz or leave it out")
    names = list(DETECTORS) + (["yunet"] if args.yunet else [])
    rows = []
    threads = [int(t) for t in args.threads.split(",")]
    for name in names:
        for k, t in enumerate(threads):
            env = dict(os.environ, OMP_NUM_THREADS=str(t), PYTHONPATH=str(ROOT))
            cmd = [sys.executable, __file__, "--child", f"{name}:{t}:{int(k == 0)}",
                   "--data", args.data, "--n", str(args.n), "--yunet", args.yunet]
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
            if r.returncode or not line:
                sys.exit(f"detectors: child {name} failed:\n{r.stderr[-2000:]}")
            row = {"date": dt.date.today().isoformat(), **json.loads(line[0][7:])}
            print(row)
            rows.append(row)
    from fer_edge.io import atomic_write_csv

    keys = list(dict.fromkeys(k for r in rows for k in r))
    atomic_write_csv(RESULTS, [{k: r.get(k, "") for k in keys} for r in rows])
    contact_sheet(SHEET)
    print(f"wrote {RESULTS} and {SHEET} ({SHEET.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
