#!/usr/bin/env bash
# Builds the kernel and turns it into an arm64 Image. The Image's path is the LAST line
# printed; everything that boots the kernel (qemu.sh, tests, benchmarks) takes it from there.
#   scripts/build.sh                 release build (the default, and what the tests use)
#   scripts/build.sh --debug         debug build
#   scripts/build.sh --fault-inject  a test Image with the `failalloc` command (never a
#                                    release: frame allocations can be made to fail)
#   scripts/build.sh --trust CERT    (repeatable, with any of the above) builds the
#                                    certificate CERT (DER or PEM) into the Image: verified
#                                    kexec trusts it (docs/trust.md)
# CARGO_TARGET_DIR is honoured (an Image with other certificates can live apart).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
trust=()
while [ $# -gt 0 ]; do
    case $1 in
        --debug) profile=debug ;;
        --fault-inject) profile=fault-inject ;;
        --trust)
            [ $# -ge 2 ] || { echo "build.sh: --trust needs a certificate file" >&2; exit 2; }
            cert=$(realpath "$2") || exit 2
            # A certificate the kernel could not parse would only be reported at boot.
            openssl x509 -in "$cert" -noout 2>/dev/null || openssl x509 -inform der -in "$cert" -noout 2>/dev/null \
                || { echo "build.sh: $2 is not an X.509 certificate (DER or PEM)" >&2; exit 2; }
            trust+=("$cert"); shift ;;
        *) echo "usage: scripts/build.sh [--debug|--fault-inject] [--trust CERT]..." >&2; exit 2 ;;
    esac
    shift
done
# kernel/build.rs reads the certificates' paths from HOBBY_TRUST (none without --trust).
if [ ${#trust[@]} -gt 0 ]; then
    HOBBY_TRUST=$(IFS=:; echo "${trust[*]}")
    export HOBBY_TRUST
else
    unset HOBBY_TRUST
fi
flags=(--target aarch64-unknown-none -p kernel --bin kernel)
case $profile in
    release) flags+=(--release) ;;
    fault-inject) flags+=(--profile fault-inject --features fault-inject) ;;
esac
cargo build -q "${flags[@]}" >&2
elf=${CARGO_TARGET_DIR:-target}/aarch64-unknown-none/$profile/kernel
objcopy=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/host: //p')/bin/llvm-objcopy
[ -x "$objcopy" ] || { echo "llvm-objcopy missing: rustup component add llvm-tools" >&2; exit 1; }
"$objcopy" -O binary "$elf" "$elf.Image"
echo "kernel: $(stat -c %s "$elf.Image") bytes, ELF with symbols at $elf" >&2
realpath "$elf.Image"
