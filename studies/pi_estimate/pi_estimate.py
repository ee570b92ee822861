"""Paper estimate of demo FPS on a Raspberry Pi 4 and 5, from published Pi latencies scaled by the
multiply-accumulates (MACs) and op mix counted in our own model files. Light tier (LiteRT).

No Raspberry Pi was measured; emulated (qemu) timings are meaningless and are not used. Method:

1. Count MACs per op type in each ``.tflite`` (classifier and face detectors) with
   :func:`count_macs` (shapes read from the file through LiteRT).
2. Published anchor: XNNPACK's Raspberry Pi table (google/XNNPACK README, "RPi 4 (BCM2711,
   ARM64)", multi-threaded, benchmarked 2022-02-08): MobileNet v1 1.0 224 INT8 24 ms / FP32
   77 ms, MobileNet v2 1.0 224 INT8 17 ms / FP32 46 ms. With their published MAC counts (569 M,
   Howard et al. 2017; 300 M, Sandler et al. 2018): INT8 23.7 and 17.6 GMAC/s, FP32 7.4 and
   6.5 GMAC/s on a Pi 4 at 4 threads. An int8 model uses the INT8 rates, a float one (the
   BlazeFace files store float16 weights that are dequantised to float32) the FP32 rates. A
   model built of dense convolutions (InceptionV3) is timed at MobileNet v1's rate (95 % of
   its MACs are 1x1 convolutions), a depthwise-separable one (BlazeFace) at MobileNet v2's;
   the two rates bound the range. Per-op overheads are not modelled (optimistic for models
   of many small ops: InceptionV3 at 75 px runs 94 convolutions on maps of 35x35 down to
   1x1).
3. Pi 5 = Pi 4 / 2.5 ("roughly two-and-a-half times as fast as a Raspberry Pi 4", Eben Upton,
   HackSpace magazine; Raspberry Pi's launch material says 2-3x); range 2-3x.
4. Haar (OpenCV cascade, not a network) has no MAC count and no trustworthy published Pi
   figure for the demo's settings. Range: from 17 ms per detection at 320 px (measured on this
   project's 2-core AVX-512 EPYC, ``results/demo_fps.csv``; assumes a Pi 4 is no faster) to
   67 ms (15 FPS, the low end of "15-25 FPS on a Pi 4 at 640x480" in hesham.us, "Face
   Detection on the Pi", taken unscaled since its cascade settings are unknown).
5. Frame time = detector / detect_every + classifier x passes x faces / classify_every, with
   passes = 2 for flip TTA on every round (``--flip-tta model``/``on``) and 1 for the
   demo's default ``alternate`` (face and mirror in turn; the first round of a new face runs
   both, not modelled) or ``off``; cadences: every frame, the demo's defaults
   (``DemoConfig``) and the old ones (detect 3, classify 2). Capture, crop/resize and drawing
   are left out (a few ms: optimistic).

Usage::

    python studies/pi_estimate/pi_estimate.py [--model fer_edge/assets/fer_default_int8.tflite]
        [--detectors fer_edge/assets/face_detection_short_range.tflite ...]

Writes ``model_macs.csv`` and ``pi_estimate.csv`` to ``studies/pi_estimate/results/``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from pathlib import Path

import numpy as np

import fer_edge
from fer_edge.demo.config import DemoConfig
from fer_edge.io import atomic_write_csv

HERE = Path(__file__).resolve().parent
ASSETS = Path(fer_edge.__file__).resolve().parent / "assets"  # the installed package's

#: published Pi 4 latencies (ms, 4 threads; XNNPACK README) and published MACs of the anchors
ANCHORS = {
    "int8": {"mobilenet_v1": {"ms": 24.0, "macs": 569e6},
             "mobilenet_v2": {"ms": 17.0, "macs": 300e6}},
    "fp32": {"mobilenet_v1": {"ms": 77.0, "macs": 569e6},
             "mobilenet_v2": {"ms": 46.0, "macs": 300e6}},
}
PI5_SPEEDUP = {"central": 2.5, "low": 2.0, "high": 3.0}
#: Pi 4 Haar at --detect-width 320, ms per detection: (x86 measured lower bound, published)
HAAR_PI4_MS = (17.0, 1000 / 15)

SOURCES = [
    ("XNNPACK README, Raspberry Pi table (RPi 4 BCM2711 ARM64, INT8 MobileNet v1/v2)",
     "https://github.com/google/XNNPACK/blob/master/README.md"),
    ("Howard et al. 2017, MobileNets (569 M mult-adds, 95 % in 1x1 convolutions)",
     "https://arxiv.org/abs/1704.04861"),
    ("Sandler et al. 2018, MobileNetV2 (300 M multiply-adds)", "https://arxiv.org/abs/1801.04381"),
    ("HackSpace magazine, Raspberry Pi 5: we interview Eben Upton and James Adams",
     "https://hackspace.raspberrypi.com/articles/raspberry-pi-5"),
    ("hesham.us, Face Detection on the Pi (Haar cascades 15-25 FPS on a Pi 4 at 640x480)",
     "https://www.hesham.us/raspberry-pi/face-detection"),
]


def count_macs(path: str | Path) -> dict:
    """Multiply-accumulates per op type of a ``.tflite`` model, batch as stored (1).

    Returns:
        ``macs`` total, ``by_kind`` {conv_kxk, conv_1x1, depthwise, fully_connected: MACs},
        ``ops`` {op name: count}, ``input`` shape, and ``depthwise_fraction`` of the MACs.
    """
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(path))
    shape = {d["index"]: tuple(int(v) for v in d["shape"]) for d in it.get_tensor_details()}
    kinds: Counter = Counter()
    ops: Counter = Counter()
    for op in it._get_ops_details():  # noqa: SLF001 - the only op-level view LiteRT offers
        name = op["op_name"]
        ops[name] += 1
        ins = [shape.get(int(i)) for i in op["inputs"] if int(i) >= 0]
        out = shape.get(int(op["outputs"][0])) if len(op["outputs"]) else None
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and out and len(ins) >= 2:
            _, kh, kw, cin = ins[1]
            n_out = int(np.prod(out))
            if name == "CONV_2D":
                kinds["conv_1x1" if kh == kw == 1 else "conv_kxk"] += n_out * kh * kw * cin
            else:
                kinds["depthwise"] += n_out * kh * kw
        elif name == "FULLY_CONNECTED" and out and len(ins) >= 2:
            kinds["fully_connected"] += int(np.prod(out)) * ins[1][-1]
    total = sum(kinds.values())
    int8 = any(op["op_name"] == "CONV_2D" and op["operand_types"][0] in (np.int8, np.uint8)
               for op in it._get_ops_details())  # noqa: SLF001
    return {"macs": total, "by_kind": dict(kinds), "ops": dict(ops),
            "dtype": "int8" if int8 else "fp32",
            "separable": ops["DEPTHWISE_CONV_2D"] >= 0.25 * max(ops["CONV_2D"], 1),
            "input": tuple(int(v) for v in it.get_input_details()[0]["shape"]),
            "depthwise_fraction": kinds["depthwise"] / total if total else 0.0}


def rates_gmacs(dtype: str) -> dict[str, float]:
    """Published Pi 4 throughput of each anchor for ``dtype``, GMAC/s at 4 threads."""
    return {k: a["macs"] / a["ms"] / 1e6 for k, a in ANCHORS[dtype].items()}


def pi4_ms(counted: dict) -> tuple[float, float, float]:
    """(central, low, high) Pi 4 ms of one forward pass at 4 threads."""
    r = rates_gmacs(counted["dtype"])
    by_rate = {k: counted["macs"] / (v * 1e9) * 1e3 for k, v in r.items()}
    central = by_rate["mobilenet_v2" if counted["separable"] else "mobilenet_v1"]
    return central, min(by_rate.values()), max(by_rate.values())


def fps(det_ms: float, cls_ms: float, passes: int, faces: int, detect_every: int,
        classify_every: int) -> float:
    return 1000.0 / (det_ms / detect_every + cls_ms * passes * faces / classify_every)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ASSETS / "fer_default_int8.tflite"))
    ap.add_argument("--detectors", nargs="*", default=None,
                    help="face-detector .tflite files (default: face_detection_*.tflite in "
                         "fer_edge/assets, if any)")
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 4], help="faces in view")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    dets = args.detectors
    if dets is None:
        dets = sorted(str(p) for p in ASSETS.glob("face_detection_*.tflite"))
    models = {"classifier": args.model, **{Path(d).stem: d for d in dets}}
    counted, rows = {}, []
    for role, path in models.items():
        c = count_macs(path)
        counted[role] = c
        central, low, high = pi4_ms(c)
        c["pi4_ms"] = (central, low, high)
        rows.append({"model": Path(path).name, "role": role,
                     "input": "x".join(map(str, c["input"])),
                     "mmacs": round(c["macs"] / 1e6, 1),
                     **{f"mmacs_{k}": round(v / 1e6, 1) for k, v in sorted(c["by_kind"].items())},
                     "depthwise_fraction": round(c["depthwise_fraction"], 3),
                     "dtype": c["dtype"], "anchor": ("mobilenet_v2" if c["separable"]
                                                     else "mobilenet_v1") + "_" + c["dtype"],
                     "n_ops": sum(c["ops"].values()),
                     "ops": " ".join(f"{k}:{v}" for k, v in sorted(c["ops"].items())),
                     "pi4_ms_est": round(central, 1), "pi4_ms_range": f"{low:.1f}-{high:.1f}",
                     "pi5_ms_est": round(central / PI5_SPEEDUP["central"], 1),
                     "pi5_ms_range": f"{low / PI5_SPEEDUP['high']:.1f}-"
                                     f"{high / PI5_SPEEDUP['low']:.1f}"})
        print(f"{Path(path).name} ({c['dtype']}): {c['macs'] / 1e6:.0f} M MACs {c['by_kind']}, "
              f"Pi 4 ~{central:.1f} ms ({low:.1f}-{high:.1f}) per pass")
    atomic_write_csv(Path(args.out) / "model_macs.csv", rows)

    detectors = {"haar@320": HAAR_PI4_MS}
    for role, c in counted.items():
        if role != "classifier":
            detectors[role] = c["pi4_ms"][1:]
    cls_lo, cls_hi = counted["classifier"]["pi4_ms"][1:]
    dflt = DemoConfig()
    cadences = ((1, 1), (dflt.detect_every, dflt.classify_every), (3, 2))
    est = []
    for board, speed in (("pi4", None), ("pi5", PI5_SPEEDUP)):
        for det, (d_lo, d_hi) in detectors.items():
            for passes, faces, (de, ce) in itertools.product((2, 1), args.faces, cadences):
                s_best, s_worst = (1.0, 1.0) if speed is None else (speed["high"], speed["low"])
                best = fps(d_lo / s_best, cls_lo / s_best, passes, faces, de, ce)
                worst = fps(d_hi / s_worst, cls_hi / s_worst, passes, faces, de, ce)
                est.append({"board": board, "detector": det, "passes": passes,
                            "detect_every": de, "classify_every": ce, "faces": faces,
                            "fps_low": round(worst, 1), "fps_high": round(best, 1)})
    atomic_write_csv(Path(args.out) / "pi_estimate.csv", est)
    for e in est:
        if e["faces"] == 1 and (e["detect_every"], e["classify_every"]) in cadences[:2]:
            print(f"{e['board']} {e['detector']:<28} passes={e['passes']} detect/"
                  f"{e['detect_every']} classify/{e['classify_every']}: "
                  f"{e['fps_low']}-{e['fps_high']} FPS")
    print("sources:\n" + "\n".join(f"- {t}: {u}" for t, u in SOURCES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
