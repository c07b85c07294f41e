#!/usr/bin/env bash
# Builds the kernel and turns it into an arm64 Image. The Image's path is the LAST line
# printed; everything that boots the kernel (qemu.sh, tests, benchmarks) takes it from there.
#   scripts/build.sh                 release build (the default, and what the tests use)
#   scripts/build.sh --debug         debug build
#   scripts/build.sh --fault-inject  a test Image with the `failalloc` command (never a
#                                    release: frame allocations can be made to fail)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
case "${1:-}" in
    --debug) profile=debug ;;
    --fault-inject) profile=fault-inject ;;
    "") ;;
    *) echo "usage: scripts/build.sh [--debug|--fault-inject]" >&2; exit 2 ;;
esac
flags=(--target aarch64-unknown-none -p kernel --bin kernel)
case $profile in
    release) flags+=(--release) ;;
    fault-inject) flags+=(--profile fault-inject --features fault-inject) ;;
esac
cargo build -q "${flags[@]}" >&2
elf=target/aarch64-unknown-none/$profile/kernel
objcopy=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/host: //p')/bin/llvm-objcopy
[ -x "$objcopy" ] || { echo "llvm-objcopy missing: rustup component add llvm-tools" >&2; exit 1; }
"$objcopy" -O binary "$elf" "$elf.Image"
echo "kernel: $(stat -c %s "$elf.Image") bytes, ELF with symbols at $elf" >&2
realpath "$elf.Image"
