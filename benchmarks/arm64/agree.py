"""Cross-platform agreement of exported builds: the same faces through the same light runtime on
two machines (here: emulated arm64 Debian and the native host). Light tier.

Two steps, run by ``benchmarks/arm64/run.sh`` (one per platform, then one to compare):

    python benchmarks/arm64/agree.py predict --builds DIR_OR_FILE --data fer2013.npz --n 300 \
        --out probs_aarch64.npz
    python benchmarks/arm64/agree.py compare native.npz emulated.npz --data fer2013.npz \
        --csv benchmarks/results/arm64_agreement.csv
    python benchmarks/arm64/agree.py demo native_log.csv emulated_log.csv --csv out.csv

``predict`` runs every ``.tflite`` / ``.onnx`` build of a folder (or one file) on the first N
faces of the PrivateTest split with :func:`fer_edge.evaluate.predict_all` (the spec's
preprocessing and flip TTA, as the demo classifies) and stores the probabilities with the
platform facts. ``compare`` writes one CSV row per build: argmax agreement, accuracy on each
platform and max |dp| (largest absolute difference of any class probability on any face).
No timing is recorded: emulated speed says nothing about a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from fer_edge.data import load_dataset
from fer_edge.errors import ConfigError, FerEdgeError
from fer_edge.evaluate import predict_all, sha256
from fer_edge.io import atomic_write_csv
from fer_edge.runtime import default_model_path, load_predictor

log = logging.getLogger("agree")
SUFFIXES = (".tflite", ".onnx")


def find_builds(where: str) -> list[Path]:
    """Every build of an export folder (sorted), or the one file given; "" = packaged model."""
    if not where:
        p = default_model_path()
        if p is None:
            raise ConfigError("this install has no packaged model; pass --builds")
        return [p]
    p = Path(where)
    if p.is_file():
        return [p]
    builds = sorted(f for f in p.glob("*") if f.suffix.lower() in SUFFIXES) if p.is_dir() else []
    if not builds:
        raise ConfigError(f"{p}: no .tflite/.onnx build there; pass an export folder or a file")
    return builds


def test_faces(data: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` PrivateTest faces: (n, 48, 48) uint8 grey and (n,) int64 labels."""
    ds = load_dataset(data)
    x, y = ds.images["test"], ds.labels["test"]
    if n <= 0 or n > len(y):
        raise ConfigError(f"--n {n}: the test split has {len(y)} faces; pass 1..{len(y)}")
    return x[:n], y[:n]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine(),
           "qemu_cpu": os.environ.get("QEMU_CPU", "")}
    for dist in ("numpy", "ai-edge-litert", "onnxruntime", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = ""
    return out


def predict(args: argparse.Namespace) -> int:
    faces, _ = test_faces(args.data, args.n)
    probs, shas = {}, {}
    for b in find_builds(args.builds):
        pred = load_predictor(b, args.threads or None)
        probs[b.name] = predict_all(pred, faces, desc=f"{b.name} on {platform.machine()}")
        shas[b.name] = sha256(b)
    facts = {"platform": _versions(), "n": args.n, "sha256": shas, "threads": args.threads}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, facts=json.dumps(facts), **{f"p:{k}": v for k, v in probs.items()})
    log.info("wrote %s (%d builds, %d faces, %s)", args.out, len(probs), args.n,
             facts["platform"]["machine"])
    return 0


def _load(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path) as z:
        facts = json.loads(str(z["facts"]))
        return facts, {k[2:]: z[k] for k in z.files if k.startswith("p:")}


def compare(args: argparse.Namespace) -> int:
    fa, pa = _load(args.native)
    _, y = test_faces(args.data, fa["n"])
    ma = fa["platform"]
    rows = []
    for other in args.emulated:
        fb, pb = _load(other)
        mb = fb["platform"]
        if fa["n"] != fb["n"] or set(pa) != set(pb):
            raise ConfigError(f"{args.native} and {other} cover different builds or faces")
        for name in sorted(pa):
            if fa["sha256"][name] != fb["sha256"][name]:
                raise ConfigError(f"{name}: the two runs used different files (sha256 differs)")
            a, b = pa[name], pb[name]
            ka, kb = a.argmax(1), b.argmax(1)
            r = {"build": name, "sha256": fa["sha256"][name][:12],
                 "emulated_cpu": mb.get("qemu_cpu") or mb["machine"], "n": len(y),
                 "agree": int((ka == kb).sum()), "agreement": round(float(np.mean(ka == kb)), 4),
                 "acc_native": round(float(np.mean(ka == y)), 4),
                 "acc_emulated": round(float(np.mean(kb == y)), 4),
                 "max_abs_dp": round(float(np.abs(a - b).max()), 5),
                 "mean_abs_dp": round(float(np.abs(a - b).mean()), 6),
                 "native": _describe(ma), "emulated": _describe(mb) + " under qemu-user",
                 "threads": fa["threads"] or "all"}
            rows.append(r)
            log.info("%s on %s: agreement %d/%d, accuracy %s %.4f / emulated %.4f, max|dp| "
                     "%.4f", name, r["emulated_cpu"], r["agree"], len(y), ma["machine"],
                     r["acc_native"], r["acc_emulated"], r["max_abs_dp"])
    atomic_write_csv(args.csv, rows)
    print(Path(args.csv).read_text(), end="")
    return 0


def demo_logs(args: argparse.Namespace) -> int:
    """Two ``fer-edge demo --log`` CSVs of the same clip: rows, label agreement, max |dp|."""
    import csv

    def read(path: str) -> dict[tuple[str, str], dict[str, str]]:
        with open(path, newline="") as f:
            return {(r["frame"], r["face_id"]): r for r in csv.DictReader(f)}

    a, b = read(args.native), read(args.emulated)
    both = sorted(set(a) & set(b), key=lambda k: (int(k[0]), int(k[1])))
    pcols = [c for c in next(iter(a.values()), {}) if c.startswith("p_")]
    dp = [abs(float(a[k][c]) - float(b[k][c])) for k in both for c in pcols]
    row = {"clip": "sample", "rows_native": len(a), "rows_emulated": len(b),
           "rows_both": len(both),
           "same_box": sum(all(a[k][c] == b[k][c] for c in "xywh") for k in both),
           "max_box_px": max((abs(int(a[k][c]) - int(b[k][c])) for k in both for c in "xywh"),
                             default=0),
           "same_label": sum(a[k]["label"] == b[k]["label"] for k in both),
           "same_raw_label": sum(a[k]["raw_label"] == b[k]["raw_label"] for k in both),
           "max_abs_dp": round(max(dp, default=0.0), 5)}
    atomic_write_csv(args.csv, [row])
    print(Path(args.csv).read_text(), end="")
    return 0


def _describe(p: dict) -> str:
    cpu = f" {p['qemu_cpu']}" if p.get("qemu_cpu") else ""
    return (f"{p['machine']}{cpu} py{p['python']} numpy {p['numpy']} ai-edge-litert "
            f"{p['ai-edge-litert']} onnxruntime {p['onnxruntime']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("predict", help="probabilities of every build on N PrivateTest faces")
    p.add_argument("--builds", default="", help="export folder or build file (default: the "
                   "packaged model)")
    p.add_argument("--data", required=True, help="fer2013.npz / .csv / Kaggle folders")
    p.add_argument("--n", type=int, default=300, help="first N PrivateTest faces")
    p.add_argument("--threads", type=int, default=0, help="runtime threads (0 = all cores)")
    p.add_argument("--out", required=True, help=".npz to write")
    c = sub.add_parser("compare", help="CSV: agreement, accuracy on both, max |dp| per build")
    c.add_argument("native", help="npz of `predict` on the reference machine")
    c.add_argument("emulated", nargs="+", help="npz of `predict` on the other machine(s)")
    c.add_argument("--data", required=True, help="the same data as for predict (labels)")
    c.add_argument("--csv", required=True, help="CSV to write")
    d = sub.add_parser("demo", help="CSV: two demo --log files of the same clip compared")
    d.add_argument("native", help="log written on the reference machine")
    d.add_argument("emulated", help="log written on the other machine")
    d.add_argument("--csv", required=True, help="CSV to write")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return {"predict": predict, "compare": compare, "demo": demo_logs}[args.cmd](args)
    except FerEdgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
