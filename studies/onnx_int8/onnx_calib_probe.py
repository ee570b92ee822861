"""Probe onnxruntime static-quantisation variants of a run's fp32 ONNX (int8 ONNX parity study).

    python studies/onnx_int8/onnx_calib_probe.py NAME N_FACES METHOD "EXTRA_OPTIONS" s8|u8 BATCH \
        [--run runs/train/cpu75x/export] [--data ../shared/data/fer2013.npz]
    EXCLUDE=node1,node2 ...   # keep these ONNX nodes float
    fer-edge evaluate runs/onnx_probe/*.onnx --data fer2013.npz \
        --reference runs/train/cpu75x/export/fer_inception_v3_75_fp32.onnx

Writes runs/onnx_probe/NAME.onnx (+ spec sidecar); calibration faces are N_FACES training
faces (seeded), fed BATCH at a time. Needs the train extra (onnx, onnxruntime quantization).
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from fer_edge.convert.export import _set_meta
from fer_edge.preprocess import to_model_input
from fer_edge.spec import ModelSpec

ap = argparse.ArgumentParser()
for a in ("name", "n", "method", "opts", "act", "bs"):
    ap.add_argument(a)
ap.add_argument("--run", default="runs/train/cpu75x/export")
ap.add_argument("--data", default="../shared/data/fer2013.npz")
args = ap.parse_args()
RUN = Path(args.run)
OUT = Path("runs/onnx_probe")
OUT.mkdir(parents=True, exist_ok=True)
src = RUN / "fer_inception_v3_75_fp32.onnx"
spec = ModelSpec.read(Path(str(src) + ".spec.json"))
d = np.load(args.data)
tr = np.flatnonzero(d["usage"] == 0)
rng = np.random.default_rng(0)
name, n, method, act, bs = args.name, int(args.n), args.method, args.act, int(args.bs)
opts = json.loads(args.opts)
pick = np.sort(rng.choice(tr, n, replace=False))
x = to_model_input(d["images"][pick], spec).astype(np.float32)


class R(CalibrationDataReader):
    def __init__(self):
        self.it = iter(range(0, len(x), bs))

    def get_next(self):
        k = next(self.it, None)
        return None if k is None else {"image": x[k:k + bs]}


dst = OUT / f"{name}.onnx"
quantize_static(str(src), str(dst), R(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8 if act == "u8" else QuantType.QInt8,
                weight_type=QuantType.QInt8, per_channel=True,
                calibrate_method=getattr(CalibrationMethod, method), extra_options=opts,
                nodes_to_exclude=[t for t in os.environ.get('EXCLUDE', '').split(',') if t])
proto = onnx.load(str(dst))
s2 = _set_meta(proto, spec.replace(input_dtype="float32"))
onnx.save(proto, str(dst))
s2.write(Path(str(dst) + ".spec.json"))
print("wrote", dst)
