#!/usr/bin/env bash
# The whole test suite: formatting, clippy (host and aarch64-unknown-none, warnings are
# errors), host unit tests, a brief fuzzing run, then the QEMU tests against a freshly built
# Image (and a test Image with failure injection).
# Installs what it needs first (scripts/setup.sh: QEMU, the Rust target, dtc, ...) and
# fetches its fixtures itself (scripts/fixtures.sh), so on a fresh Debian/Ubuntu machine with
# Rust this is the whole set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }
start=$(date +%s)

step "setup"
scripts/setup.sh
step "fixtures"
scripts/fixtures.sh
scripts/fixtures-test.sh
step "cargo fmt --check"
cargo fmt --all -- --check
step "clippy (host)"
cargo clippy --workspace --all-targets -q -- -D warnings
step "clippy (aarch64-unknown-none)"
cargo clippy -q -p kernel -p boot -p mm -p kexec --target aarch64-unknown-none --release -- -D warnings
cargo clippy -q -p kernel --features fault-inject --target aarch64-unknown-none --profile fault-inject -- -D warnings
step "host unit tests"
cargo test -q --workspace --lib --bins
cargo test -q -p mm --features fault-inject --lib
step "fuzzing, briefly (scripts/fuzz.sh: 5 s a target)"
scripts/fuzz.sh 5
step "build the Image (and the test Image with failure injection)"
image=$(scripts/build.sh | tail -n1)
echo "$image"
fault_image=$(scripts/build.sh --fault-inject | tail -n1)
echo "$fault_image"
step "build the cache model (QEMU plugin)"
cache_model=$(tools/cache-model/build.sh | tail -n1)
echo "$cache_model"
step "QEMU tests"
KERNEL_IMAGE=$image FAULT_IMAGE=$fault_image CACHE_MODEL=$cache_model cargo test -q -p kernel --test qemu -- --test-threads=2
printf '\nall tests passed in %ss\n' "$(( $(date +%s) - start ))"
