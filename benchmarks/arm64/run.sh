#!/usr/bin/env bash
# Raspberry Pi OS (64-bit, Bookworm) check under emulation: an arm64 Debian 12 rootfs run with
# qemu-user. Installs the light tier from this checkout exactly as demo/README.md tells a Pi
# user, runs the light test suite (-m "not tf"), the demo on the sample clip with --log, and
# every build of an export folder on N PrivateTest faces in arm64 and natively; writes
#   benchmarks/results/arm64_agreement.csv  (per build: argmax agreement, accuracy on both,
#                                            max |dp|)
#   benchmarks/results/arm64_demo_log.csv   (demo --log on the sample clip: arm64 vs native)
# Emulated timings are meaningless (qemu translates every instruction): none is recorded, and
# none may be quoted as Raspberry Pi speed.
#
# Usage (root; apt-get install qemu-user-static binfmt-support debootstrap):
#   benchmarks/arm64/run.sh --data /path/to/fer2013.npz [--builds EXPORT_DIR_OR_FILE] [--n 300]
#       [--stages rootfs,install,tests,demo,agree] [--tests "PYTEST ARGS"]
#       [--rootfs DIR] [--work DIR] [--python NATIVE_PYTHON] [--tests-timeout MIN]
#       [--cpus cortex-a72,cortex-a76] [--tests-data]
# Defaults: the packaged model, n 300, all stages, the whole light suite (-m "not tf"), rootfs
# ~/.cache/fer-edge/arm64-bookworm (or $FER_ARM64_ROOTFS), work dir ~/.cache/fer-edge/arm64-work,
# native python = python3 (needs the light tier; the checkout is put first on PYTHONPATH).
# --cpus: the CPUs qemu emulates (QEMU_CPU): cortex-a72 = Raspberry Pi 4, cortex-a76 = Pi 5.
# The tests and the demo run on the first, the agreement check on each (their int8 kernels
# differ: the A76 has the dot-product instructions, the A72 not); qemu's default "max" CPU is
# no Pi (it advertises SVE, SME, ...).
# Pitfalls met on the way (qemu-user 7.2): without /proc in the chroot onnxruntime crashes on
# import; with the x86 host's /sys bound in, cpuinfo (inside XNNPACK and onnxruntime) parses
# the host's CPU topology and LiteRT/onnxruntime crash (SIGSEGV); with no /sys at all cpuinfo
# fails and LiteRT silently runs its built-in kernels instead of XNNPACK, unlike a Pi. So each
# command runs in a private mount namespace with a fake /proc/cpuinfo and a two-file /sys
# (cpu possible/present) describing the emulated Pi CPU: cpuinfo then initialises and LiteRT
# uses XNNPACK ("Created TensorFlow Lite XNNPACK delegate"), as on the board.
# The suite runs without the FER-2013 file (its two data tests skip: the full PrivateTest pass
# alone would take over 30 min emulated; the agree stage covers the data); --tests-data
# exposes it to them.
# Idempotent: the rootfs and the venv inside it are built once and reused; the checkout is
# copied in afresh on every run. Typical total on a 2-core x86 host: see benchmarks/README.md.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$REPO/benchmarks/arm64"
ROOTFS="${FER_ARM64_ROOTFS:-$HOME/.cache/fer-edge/arm64-bookworm}"
WORK="$HOME/.cache/fer-edge/arm64-work"
DATA="" BUILDS="" N=300 STAGES="rootfs,install,tests,demo,agree" TESTS="" TESTS_TIMEOUT=30
CPUS="cortex-a72,cortex-a76" TESTS_DATA=0
PY="${PYTHON:-python3}"
RESULTS="$REPO/benchmarks/results"

die() { echo "arm64/run: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --builds) BUILDS="$2"; shift 2 ;;
    --n) N="$2"; shift 2 ;;
    --stages) STAGES="$2"; shift 2 ;;
    --tests) TESTS="$2"; shift 2 ;;
    --tests-timeout) TESTS_TIMEOUT="$2"; shift 2 ;;
    --rootfs) ROOTFS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --tests-data) TESTS_DATA=1; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
has() { case ",$STAGES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
for s in ${STAGES//,/ }; do
  case "$s" in rootfs|install|tests|demo|agree) ;; *) die "--stages: unknown stage $s" ;; esac
done
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -gt 0 ] || die "--n $N: give a positive number of faces"
if has agree; then
  [ -n "$DATA" ] || die "the agree stage needs --data PATH/fer2013.npz (or drop it from --stages)"
  [ -f "$DATA" ] || die "--data $DATA: no such file"
  DATA="$(realpath "$DATA")"
  [ -z "$BUILDS" ] || [ -e "$BUILDS" ] || die "--builds $BUILDS: no such file or folder"
  [ -z "$BUILDS" ] || BUILDS="$(realpath "$BUILDS")"
fi
QCPU="${CPUS%%,*}"
"$PY" -c "import numpy, cv2" 2>/dev/null || die "--python $PY lacks the light tier (numpy, cv2)"
mkdir -p "$WORK" "$RESULTS"
T0=$(date +%s)
stamp() { echo "[arm64 $(( $(date +%s) - T0 ))s] $*"; }

# --- rootfs (cached) -----------------------------------------------------------------------
if has rootfs || [ ! -e "$ROOTFS/.fer-debootstrap-done" ]; then
  nice -n 10 "$HERE/rootfs.sh" "$ROOTFS"
fi

# --- mounts for the chroot, always undone on exit ------------------------------------------
SRC=/home/pi/fer-edge          # where a Pi user would clone it
MOUNTED=()
cleanup() {
  local i
  for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do umount -R "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bind() {  # bind SRC DEST [ro]
  mkdir -p "$2"
  mountpoint -q "$2" && umount -R "$2"
  mount --rbind "$1" "$2" && mount --make-rslave "$2"
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
  MOUNTED+=("$2")
}
mountpoint -q "$ROOTFS/proc" || { mount -t proc proc "$ROOTFS/proc"; MOUNTED+=("$ROOTFS/proc"); }
bind /dev "$ROOTFS/dev"
if [ -n "$DATA" ]; then bind "$(dirname "$DATA")" "$ROOTFS/mnt/fer-data" ro; fi
IN_DATA="/mnt/fer-data/$(basename "${DATA:-none}")"
BUILDS_DIR="$(dirname "${BUILDS:-/nonexistent/x}")"
if [ -n "$BUILDS" ]; then bind "$BUILDS_DIR" "$ROOTFS/mnt/fer-builds" ro; fi
IN_BUILDS="${BUILDS:+/mnt/fer-builds/$(basename "$BUILDS")}"
bind "$WORK" "$ROOTFS/mnt/fer-work"
fake_cpu() {  # fake_cpu CPU DIR: /proc/cpuinfo and /sys/devices/system/cpu of a 4-core Pi
  local features part variant rev i
  case "$1" in
    cortex-a72) features="fp asimd evtstrm crc32 cpuid"; part=0xd08; variant=0x0; rev=3 ;;
    cortex-a76) features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
                part=0xd0b; variant=0x4; rev=1 ;;
    *) die "--cpus: $1 is not a Raspberry Pi CPU (cortex-a72 = Pi 4, cortex-a76 = Pi 5)" ;;
  esac
  mkdir -p "$2/sys/devices/system/cpu"
  echo 0-3 > "$2/sys/devices/system/cpu/possible"
  echo 0-3 > "$2/sys/devices/system/cpu/present"
  for i in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
      "$i" "$features" "$variant" "$part" "$rev"
  done > "$2/cpuinfo"
}
for c in ${CPUS//,/ }; do fake_cpu "$c" "$WORK/fakecpu/$c"; done
inpi() {  # run a command as the Pi user would, in the clone, inside the arm64 rootfs
  QEMU_CPU="$QCPU" unshare -m /bin/bash -c '
    mount --make-rprivate / && mount --bind "$1/cpuinfo" "$2/proc/cpuinfo" \
      && mount --bind "$1/sys" "$2/sys" \
      && exec chroot "$2" /usr/bin/env -i QEMU_CPU="$3" HOME=/root \
           PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 \
           FER_EDGE_DATA="$4" /bin/bash -c "cd $5 && $6"' \
    _ "$WORK/fakecpu/$QCPU" "$ROOTFS" "$QCPU" "$IN_DATA" "$SRC" "$1"
}

# --- install: the checkout, then demo/README.md's Raspberry Pi commands --------------------
if has install; then
  stamp "copying the checkout into $ROOTFS$SRC"
  mkdir -p "$ROOTFS$SRC"
  find "$ROOTFS$SRC" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
  tar -C "$REPO" --exclude=.git --exclude=.venv --exclude=runs --exclude=build \
      --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache -cf - . \
    | tar -C "$ROOTFS$SRC" -xf -
  # demo/README.md, "Raspberry Pi": (python3-picamera2 comes from the Raspberry Pi archive,
  # which a plain Debian rootfs lacks; the picamera2 path is tested with a stand-in module)
  stamp "pip install . (aarch64 wheels from PyPI; slow under emulation)"
  inpi "[ -x .venv/bin/python ] || python3 -m venv --system-site-packages .venv
        .venv/bin/pip install --progress-bar off . 2>&1 | tail -n 4
        .venv/bin/pip install --progress-bar off 'pytest>=8' 2>&1 | tail -n 1
        .venv/bin/python -c 'import platform, numpy, cv2, onnxruntime, ai_edge_litert; print(platform.machine(), platform.python_version(), \"numpy\", numpy.__version__, \"cv2\", cv2.__version__, \"onnxruntime\", onnxruntime.__version__)'
        .venv/bin/pip list --format=freeze 2>/dev/null | grep -iE '^(numpy|opencv|onnxruntime|ai-edge|fer-edge)'"
fi
[ -x "$ROOTFS$SRC/.venv/bin/fer-edge" ] || die "the arm64 venv is not installed yet: run with the install stage"

# --- the light test suite under emulation ---------------------------------------------------
if has tests; then
  stamp "pytest -m 'not tf' ${TESTS} under emulation, $QCPU (timeout ${TESTS_TIMEOUT} min)"
  set +e
  hide=""
  [ "$TESTS_DATA" = 1 ] || hide="FER_EDGE_DATA=/nonexistent/fer2013.npz"
  inpi "$hide timeout ${TESTS_TIMEOUT}m .venv/bin/python -m pytest -m 'not tf' -q -rs \
        -p no:cacheprovider --durations=5 $TESTS" 2>&1 | tee "$WORK/pytest_aarch64.log" | tail -n 25
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" = 0 ] || die "the light suite failed under emulation (exit $rc; log $WORK/pytest_aarch64.log)"
fi

# --- the demo on the sample clip, with --log, in arm64 and natively ------------------------
if has demo; then
  stamp "fer-edge demo --video sample --headless --log (arm64, $QCPU)"
  inpi ".venv/bin/fer-edge demo --video sample --headless --log /mnt/fer-work/demo_aarch64.csv" \
    2>&1 | grep -v '^Error in cpuinfo' | tail -n 3 | sed 's/^/  (emulated: its timings are not Pi speed) /'
  stamp "the same natively"
  (cd "$REPO" && PYTHONPATH="$REPO" "$PY" -m fer_edge demo --video sample --headless \
     --log "$WORK/demo_native.csv" 2>&1 | tail -n 1)
  PYTHONPATH="$REPO" "$PY" "$HERE/agree.py" demo "$WORK/demo_native.csv" \
    "$WORK/demo_aarch64.csv" --csv "$RESULTS/arm64_demo_log.csv"
fi

# --- every build on N PrivateTest faces, arm64 vs native ------------------------------------
if has agree; then
  npzs=()
  for QCPU in ${CPUS//,/ }; do
    stamp "predict: $N PrivateTest faces, ${BUILDS:-the packaged model} (arm64, $QCPU)"
    inpi ".venv/bin/python benchmarks/arm64/agree.py predict --data '$IN_DATA' --n $N \
          ${IN_BUILDS:+--builds '$IN_BUILDS'} --out /mnt/fer-work/probs_$QCPU.npz"
    npzs+=("$WORK/probs_$QCPU.npz")
  done
  stamp "predict natively"
  PYTHONPATH="$REPO" "$PY" "$HERE/agree.py" predict --data "$DATA" --n "$N" \
    ${BUILDS:+--builds "$BUILDS"} --out "$WORK/probs_native.npz"
  PYTHONPATH="$REPO" "$PY" "$HERE/agree.py" compare "$WORK/probs_native.npz" "${npzs[@]}" \
    --data "$DATA" --csv "$RESULTS/arm64_agreement.csv"
fi
stamp "done (wall time is emulation time, not Raspberry Pi speed)"
