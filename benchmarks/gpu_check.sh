#!/usr/bin/env bash
# GPU check for `fer-edge train`: run it on a machine with NVIDIA GPU(s), from the checkout.
#
#   bash benchmarks/gpu_check.sh                       # synthetic data, 200 steps per config
#   bash benchmarks/gpu_check.sh --data fer2013.npz    # FER-2013: one epoch = 224 steps
#   bash benchmarks/gpu_check.sh --steps 300 --out /tmp/gpucheck
#   bash benchmarks/gpu_check.sh --recipe train/smoke.toml --batch 16   # quick plumbing check
#
# Trains train/gpu.toml (InceptionV3 at 139x139, batch 128, XLA) for one epoch of --steps
# steps in each configuration: 1 GPU float32, 1 GPU mixed float16, and (with >1 GPU)
# N GPUs with MirroredStrategy, float32 and float16. Each configuration runs in a fresh
# process; every run folder is then converted (float TFLite + ONNX; the first float16 run also
# int8). Prints one table: train img/s (the progress log's last in-epoch figure, so without
# validation), peak GPU memory (nvidia-smi, polled every second, summed over the GPUs in
# use), and whether `fer-edge convert` accepted the run folder. About 5-8 minutes on one
# recent GPU. Weights: none (no download; throughput does not depend on them).
set -euo pipefail

PY=${PYTHON:-python}
DATA=synthetic
STEPS=200
RECIPE=train/gpu.toml
BATCH=128  # train/gpu.toml's batch size
OUT=${TMPDIR:-/tmp}/fer-edge-gpu-check-$(date +%Y%m%d-%H%M%S)
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --recipe) RECIPE=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    -h|--help) sed -n 2,17p "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null || { echo "gpu_check.sh: nvidia-smi not found: this check needs an NVIDIA GPU machine" >&2; exit 2; }
NGPU=$(nvidia-smi -L | grep -c '^GPU ' || true)
[ "$NGPU" -ge 1 ] || { echo "gpu_check.sh: nvidia-smi lists no GPU" >&2; exit 2; }
# GPU_CHECK_PLUMBING=1: let it run where TensorFlow sees no GPU (checks this script, not a GPU)
"$PY" -c "import tensorflow as tf, sys; g = tf.config.list_physical_devices('GPU'); print('TensorFlow', tf.__version__, 'sees', len(g), 'GPU(s)'); sys.exit(0 if g else 1)" \
  || [ "${GPU_CHECK_PLUMBING:-0}" = 1 ] \
  || { echo "gpu_check.sh: TensorFlow sees no GPU (pip install 'tensorflow[and-cuda]' matching the driver)" >&2; exit 2; }
mkdir -p "$OUT"
LIMIT=$((STEPS * BATCH))
if [ "$DATA" = synthetic ]; then
  DATA=$OUT/synthetic.npz
  "$PY" -c "from fer_edge.data.synthetic import write_npz; write_npz('$DATA', $LIMIT, 512, 512)"
fi
echo "$RECIPE, data $DATA, $STEPS steps of batch $BATCH per configuration, outputs in $OUT"

ALL=$(seq -s, 0 $((NGPU - 1)))
CONFIGS=("1gpu_fp32|0|none|no" "1gpu_fp16|0|none|float16")
if [ "$NGPU" -gt 1 ]; then
  CONFIGS+=("${NGPU}gpu_fp32|$ALL|mirrored|no" "${NGPU}gpu_fp16|$ALL|mirrored|float16")
fi

peak_mem() {  # peak_mem GPU_LIST PID: poll nvidia-smi while PID lives; print the peak MiB sum
  local gpus=$1 pid=$2 peak=0 now
  while kill -0 "$pid" 2>/dev/null; do
    now=$(nvidia-smi --id="$gpus" --query-gpu=memory.used --format=csv,noheader,nounits \
          | awk '{s += $1} END {print s + 0}')
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 1
  done
  echo "$peak"
}

ROWS=()
INT8_DONE=0
for c in "${CONFIGS[@]}"; do
  IFS='|' read -r name gpus dist mp <<< "$c"
  run=$OUT/runs/$name
  log=$OUT/$name.train.log
  echo "== $name: CUDA_VISIBLE_DEVICES=$gpus --distribute $dist --mixed-precision $mp"
  CUDA_VISIBLE_DEVICES=$gpus "$PY" -m fer_edge train --config "$RECIPE" --data "$DATA" \
    --weights none --head-epochs 0 --finetune-epochs 1 --limit "$LIMIT" --patience 0 \
    --batch-size "$BATCH" \
    --distribute "$dist" --mixed-precision "$mp" --no-tensorboard \
    --runs-dir "$OUT/runs" --name "$name" > "$log" 2>&1 &
  pid=$!
  mem=$(peak_mem "$gpus" "$pid")
  if wait "$pid"; then train_ok=yes; else train_ok="no (exit $?, see $log)"; fi
  ips=$(grep -o '[0-9.]* img/s' "$log" | tail -1 | cut -d' ' -f1 || true)
  # fewer than 50 steps log no in-epoch rate: the epoch's (validation included) from history.csv
  [ -n "$ips" ] || ips=$(awk -F, '{sub(/\r$/, "")}
                         NR == 1 {for (i = 1; i <= NF; i++) if ($i == "images_per_s") c = i}
                         NR > 1 && c {v = $c} END {if (v != "") print v " (incl. val)"}' \
                         "$run/history.csv" 2>/dev/null || true)
  replicas=$(grep -o '[0-9]* replica(s)' "$log" | head -1 | cut -d' ' -f1 || true)
  conv=skipped
  if [ "$train_ok" = yes ]; then
    int8=()
    if [ "$mp" = float16 ] && [ "$INT8_DONE" = 0 ]; then
      int8=(--int8 --qat-steps 20 --calib-faces 100); INT8_DONE=1
    fi
    set +e
    CUDA_VISIBLE_DEVICES=${gpus%%,*} "$PY" -m fer_edge convert "$run" "${int8[@]}" \
      --latency-runs 10 > "$OUT/$name.convert.log" 2>&1
    rc=$?
    set -e
    case $rc in
      0) conv="yes${int8:+ (with int8)}" ;;
      3) conv="yes, but the parity gate failed (1-epoch model; see $OUT/$name.convert.log)" ;;
      *) conv="NO (exit $rc, see $OUT/$name.convert.log)" ;;
    esac
  fi
  ROWS+=("$name|${replicas:-?}|${ips:-?}|$mem|$train_ok|$conv")
done

echo
printf '%-11s %-8s %-22s %-14s %-8s %s\n' config replicas "train img/s" "peak GPU MiB" trained converts
for r in "${ROWS[@]}"; do
  IFS='|' read -r a b c d e f <<< "$r"
  printf '%-11s %-8s %-22s %-14s %-8s %s\n' "$a" "$b" "$c" "$d" "$e" "$f"
done
