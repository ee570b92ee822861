#!/usr/bin/env bash
# Two `fer-edge train` workers on 127.0.0.1 (MultiWorkerMirroredStrategy via TF_CONFIG) train
# the smoke recipe together; the chief's run folder is then converted. Runs on any machine,
# no GPU needed: it shows the multi-worker path end to end (both workers' logs, one run folder).
#
#   bash benchmarks/multiworker_local.sh [OUT_DIR] [extra fer-edge train flags...]
#
# OUT_DIR (default a new folder in $TMPDIR) receives worker0.log, worker1.log, convert.log and
# runs/mw/ (the chief's run folder). Every process is killed after 600 s at most.
set -euo pipefail

PY=${PYTHON:-python}
OUT=${1:-${TMPDIR:-/tmp}/fer-edge-multiworker-$(date +%Y%m%d-%H%M%S)}
shift || true
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
[ ! -e "$OUT/runs/mw" ] || { echo "multiworker_local.sh: $OUT/runs/mw exists; give another OUT_DIR" >&2; exit 2; }
read -r P0 P1 < <("$PY" -c "
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(('127.0.0.1', 0))
print(*[x.getsockname()[1] for x in s])")
CLUSTER='"cluster": {"worker": ["127.0.0.1:'$P0'", "127.0.0.1:'$P1'"]}'
pids=()
for i in 0 1; do
  TF_CONFIG="{$CLUSTER, \"task\": {\"type\": \"worker\", \"index\": $i}}" \
    timeout -s KILL 600 "$PY" -m fer_edge train --config train/smoke.toml --finetune-epochs 2 \
    --runs-dir "$OUT/runs" --name mw --peer-timeout 60 "$@" > "$OUT/worker$i.log" 2>&1 &
  pids+=($!)
done
rc=0
for i in 0 1; do
  if wait "${pids[$i]}"; then echo "worker $i: exit 0"; else r=$?; echo "worker $i: exit $r"; rc=1; fi
done
for i in 0 1; do
  echo "---- worker $i (TF_CONFIG task index $i) ----"
  grep -v '^[WIE]0000 \|^WARNING: All log messages' "$OUT/worker$i.log" || true
done
[ "$rc" = 0 ] || exit 1
echo "---- fer-edge convert $OUT/runs/mw ----"
timeout -s KILL 600 "$PY" -m fer_edge convert "$OUT/runs/mw" --latency-runs 10 > "$OUT/convert.log" 2>&1
grep -v '^[WIE]0000 \|^WARNING: All log messages' "$OUT/convert.log" | tail -n 8
ls "$OUT/runs/mw" "$OUT/runs/mw/export"
