#!/usr/bin/env bash
# Peer benchmark: the `fer` PyPI package (mini-XCEPTION, Haar + bundled TFLite) measured on the
# same PrivateTest faces and the same 640x480 clip as fer-edge, in its own venv.
#   bash benchmarks/peer_fer/run.sh [path/to/fer2013.npz]
# Lean install: `pip install fer` pulls torch + CUDA through facenet-pytorch (8 GB, only for
# its optional MTCNN); its default Haar + TFLite path needs only what is listed below.
# setuptools<81 keeps pkg_resources (fer imports it); OpenCV < 5 keeps the Haar XML files.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/benchmarks/_work/fer-venv"
DATA="${1:-$ROOT/../shared/data/fer2013.npz}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --no-deps fer==25.10.3
  "$VENV/bin/pip" install -q "tensorflow==2.21.0" "opencv-contrib-python-headless>=4.8,<5" \
    pandas requests pillow tqdm "setuptools<81"
fi
SIZE_MB=$(du -sm "$VENV" | cut -f1)
"$VENV/bin/python" "$HERE/measure.py" --data "$DATA" --venv-mb "$SIZE_MB" \
  --clip "$ROOT/fer_edge/assets/sample_astronaut.mp4" --out "$ROOT/benchmarks/results/peer_fer.csv"
