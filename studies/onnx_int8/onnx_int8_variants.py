"""Why the int8 ONNX is the int8 TFLite with uint8 activations: its variants side by side.

From a run's int8 TFLite (``fer-edge convert --int8``) three ONNX variants are made with
``fer_edge.convert.export.onnx_int8_from_tflite`` and run by onnxruntime on the same faces:

- ``int8 activations``: tf2onnx's graph as it comes (int8 activations and weights);
- ``uint8 activations``: what ``fer-edge convert`` ships (same grid, zero points + 128),
  run here with the precision mode off (the runtime turns it on for x86 CPUs without VNNI,
  ``fer_edge.runtime.onnx.u8s8_may_saturate``, so on those this row is the old behaviour);
- ``uint8 activations, x64 precision mode``: the same file with onnxruntime's
  ``session.x64quantprecision`` (u8 x u8 products, no saturation possible on x86).

Per variant: how many convolutions onnxruntime fuses into integer kernels (QLinearConv) or
leaves in float (Conv), batch-1 median latency at 1 thread, argmax agreement with the
reference build (flip TTA as the spec says) and the largest probability difference from the
shipped variant.

    python studies/onnx_int8/onnx_int8_variants.py runs/train/cpu75x/export_recipe \
        --data ../shared/data/fer2013.npz

Writes ``studies/onnx_int8/results/onnx_int8_variants_<run>.csv``.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from fer_edge.convert.export import onnx_int8_from_tflite  # noqa: E402
from fer_edge.data import load_dataset  # noqa: E402
from fer_edge.io import atomic_write_csv  # noqa: E402
from fer_edge.preprocess import to_model_input  # noqa: E402
from fer_edge.runtime import load_predictor  # noqa: E402
from fer_edge.spec import ModelSpec  # noqa: E402

HERE = Path(__file__).resolve().parent


def session(path: Path, threads: int, precision: bool, optimized: Path | None = None):
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.log_severity_level = threads, 3
    o.add_session_config_entry("session.x64quantprecision", "1" if precision else "0")
    if optimized is not None:
        o.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", help="a convert output folder with the int8 TFLite and fp32 ONNX")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--runs", type=int, default=200, help="timed batch-1 runs")
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    exp = Path(a.export)
    tfl = next(exp.glob("*_int8.tflite"))
    ref_path = next(exp.glob("*_fp32.onnx"))
    spec = ModelSpec.read(ref_path.with_name(ref_path.name + ".spec.json"))
    ds = load_dataset(a.data)
    faces, _ = ds.images[a.split], ds.labels[a.split]
    x = to_model_input(faces, spec)
    xf = x[:, :, ::-1, :].copy()
    ref = load_predictor(ref_path).predict(faces).argmax(1)
    x1 = np.ascontiguousarray(x[:1])
    rows, probs = [], {}
    with tempfile.TemporaryDirectory() as d:
        files = {}
        for name, u8 in (("int8 activations", False), ("uint8 activations", True)):
            data, _ = onnx_int8_from_tflite(tfl.read_bytes(), spec, a.opset, uint8_activations=u8)
            files[name] = Path(d) / f"{u8}.onnx"
            files[name].write_bytes(data)
        variants = [("int8 activations", files["int8 activations"], False),
                    ("uint8 activations (shipped)", files["uint8 activations"], False),
                    ("uint8 activations, x64 precision mode", files["uint8 activations"], True)]
        for name, path, precision in variants:
            opt = Path(d) / "opt.onnx"
            s = session(path, 1, precision, opt)
            ops = collections.Counter(n.op_type for n in onnx.load(str(opt)).graph.node)
            for _ in range(20):
                s.run(None, {"image": x1})
            ts = []
            for _ in range(a.runs):
                t = time.perf_counter()
                s.run(None, {"image": x1})
                ts.append(time.perf_counter() - t)
            s2 = session(path, os.cpu_count() or 1, precision)

            def run(inp, s2=s2):
                return np.concatenate([s2.run(None, {"image": inp[i:i + 64]})[0]
                                       for i in range(0, len(inp), 64)])

            p = run(x)
            if spec.tta_flip:
                p = (p + run(xf)) / 2
            probs[name] = p
            rows.append({"run": exp.parent.name, "variant": name,
                         "qlinearconv": ops.get("QLinearConv", 0), "float_conv": ops.get("Conv", 0),
                         "ms_1thread": round(1000 * float(np.median(ts)), 3),
                         "split": a.split, "n": len(x),
                         "agreement_with_fp32": round(float(np.mean(p.argmax(1) == ref)), 5)})
            print(rows[-1], flush=True)
    shipped = probs["uint8 activations (shipped)"]
    for r in rows:
        r["max_abs_dp_vs_shipped"] = float(np.abs(probs[r["variant"]] - shipped).max())
    out = HERE / "results" / f"onnx_int8_variants_{exp.parent.name}.csv"
    atomic_write_csv(out, rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
