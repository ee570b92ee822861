#!/usr/bin/env bash
# Build (once) and cache an emulated arm64 Debian 12 "bookworm" rootfs: the userland of
# Raspberry Pi OS (64-bit) Bookworm, which ships Python 3.11. Idempotent and resumable:
# re-running after an interruption continues (debootstrap is restarted into a fresh directory,
# finished stages are skipped via marker files).
#
# Usage: benchmarks/arm64/rootfs.sh [ROOTFS]   (default $FER_ARM64_ROOTFS or
#        ~/.cache/fer-edge/arm64-bookworm). Needs root, qemu-user-static, binfmt-support,
#        debootstrap (apt-get install qemu-user-static binfmt-support debootstrap).
set -euo pipefail

ROOTFS="${1:-${FER_ARM64_ROOTFS:-$HOME/.cache/fer-edge/arm64-bookworm}}"
MIRROR="${FER_ARM64_MIRROR:-}"
SUITE=bookworm
PKGS=python3,python3-venv,python3-pip,ca-certificates

die() { echo "arm64/rootfs: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, binfmt_misc); run with sudo"
for tool in debootstrap qemu-aarch64-static update-binfmts chroot; do
  command -v "$tool" >/dev/null || die "$tool not found: apt-get install qemu-user-static binfmt-support debootstrap"
done

# binfmt_misc: the kernel must hand aarch64 ELF files to qemu-aarch64-static.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc \
    || die "cannot mount binfmt_misc (in a container: run it privileged, or mount it on the host)"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 \
    || die "update-binfmts --enable qemu-aarch64 failed (is qemu-user-static installed?)"
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || die "binfmt qemu-aarch64 is registered but disabled: update-binfmts --enable qemu-aarch64"

# Mirror: the one this host's apt already uses (deb822 or one-line sources), else deb.debian.org.
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -rhoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
           | grep -oE 'https?://[^ ]+' | head -n1 || true)
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi

if [ ! -e "$ROOTFS/.fer-debootstrap-done" ]; then
  # A half-finished debootstrap cannot be resumed reliably: start it again in a fresh dir
  # (its package cache is kept in $ROOTFS.debs so the downloads are not repeated).
  for d in "$ROOTFS" "$ROOTFS.partial"; do  # never rm -rf through a live bind mount
    ! findmnt -rn -o TARGET | grep -q "^$(realpath -m "$d")/" \
      || die "$d has mounts inside (an interrupted run.sh?): umount -R them first"
  done
  rm -rf "$ROOTFS.partial"
  mkdir -p "$ROOTFS.partial" "$ROOTFS.debs"
  echo "arm64/rootfs: debootstrap $SUITE arm64 from $MIRROR into $ROOTFS (takes a while under emulation)"
  debootstrap --arch=arm64 --variant=minbase --include="$PKGS" \
    --cache-dir="$(realpath "$ROOTFS.debs")" "$SUITE" "$ROOTFS.partial" "$MIRROR"
  touch "$ROOTFS.partial/.fer-debootstrap-done"
  rm -rf "$ROOTFS"
  mv "$ROOTFS.partial" "$ROOTFS"
fi

# The host's CA bundle, so that pip inside the rootfs trusts the same TLS roots as the host
# (needed behind a TLS-inspecting proxy; harmless otherwise). Refreshed on every run.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$ROOTFS/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
fi
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
echo "arm64/rootfs: ready: $ROOTFS ($(chroot "$ROOTFS" /usr/bin/python3 --version 2>&1), $(chroot "$ROOTFS" /usr/bin/uname -m))"
