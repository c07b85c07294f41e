#!/usr/bin/env bash
# Packs a directory into a cpio newc initramfs: scripts/mkinitramfs.sh DIR OUT [--gzip]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/mkinitramfs.sh DIR OUT [--gzip]" >&2; exit 2; }
dir=$1; out=$(realpath -m "$2")
(cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc) > "$out.tmp"
if [ "${3:-}" = --gzip ]; then gzip -9n < "$out.tmp" > "$out"; rm "$out.tmp"; else mv "$out.tmp" "$out"; fi
