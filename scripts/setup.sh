#!/usr/bin/env bash
# Installs everything the build and the tests need, and says what it did.
#   - the Rust target aarch64-unknown-none and llvm-tools (objcopy for the Image)
#   - QEMU >= 9 (on Debian 12 from bookworm-backports), dtc/fdtput, gdb-multiarch
#   - gcc, pkg-config and glib's headers for the cache-model QEMU plugin (tools/cache-model)
#   - g++ for libFuzzer (scripts/fuzz.sh builds it through cargo-fuzz)
#   - Debian's EDK2 and U-Boot for QEMU virt (qemu-efi-aarch64, u-boot-qemu)
#   - gnuplot (scripts/bench.sh draws its plot with it)
#   - sbsigntool and openssl (scripts/sign.sh signs the Image; the verified-kexec tests sign
#     with the snakeoil key of qemu-efi-aarch64)
#   - dosfstools, mtools, fdisk, e2fsprogs (scripts/sdcard.sh --image; the disk tests' and
#     the fuzzer's disk images are made by mkfs.fat, mcopy, sfdisk and mkfs.ext4; the
#     ext4 reader's host tests find an inode with e2fsprogs' debugfs)
#   - on Debian 12, the bookworm-backports source (QEMU, and the fixtures' Linux 6.12)
# Idempotent: a second run only checks.  Needs root (or sudo) for apt.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# --- Rust ------------------------------------------------------------------
if ! command -v rustup >/dev/null; then
    say "rustup not found: install Rust from https://rustup.rs first"; exit 1
fi
rustup target list --installed | grep -qx aarch64-unknown-none \
    || rustup target add aarch64-unknown-none
rustup component list --installed | grep -q '^llvm-tools' \
    || rustup component add llvm-tools
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# --- QEMU and device-tree tools --------------------------------------------
qemu_major() {
    command -v qemu-system-aarch64 >/dev/null || { echo 0; return; }
    qemu-system-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1
}
need_pkgs=()
[ "$(qemu_major)" -ge 9 ] || need_pkgs+=(qemu-system-arm)
command -v fdtput >/dev/null || need_pkgs+=(device-tree-compiler)
command -v gdb-multiarch >/dev/null || need_pkgs+=(gdb-multiarch)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v gcc >/dev/null || need_pkgs+=(gcc)
command -v g++ >/dev/null || need_pkgs+=(g++)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
pkg-config --exists glib-2.0 2>/dev/null || need_pkgs+=(libglib2.0-dev)
# EDK2 for QEMU virt (the UEFI tests and qemu.sh's UEFI boots).
[ -f /usr/share/qemu-efi-aarch64/QEMU_EFI.fd ] || need_pkgs+=(qemu-efi-aarch64)
# U-Boot for QEMU virt (the U-Boot tests and qemu.sh --firmware uboot).
[ -f /usr/lib/u-boot/qemu_arm64/u-boot.bin ] || need_pkgs+=(u-boot-qemu)
# A Pi 4 SD card image (scripts/sdcard.sh --image): FAT, its files, the partition table.
command -v mkfs.vfat >/dev/null || [ -x /usr/sbin/mkfs.vfat ] || [ -x /sbin/mkfs.vfat ] || need_pkgs+=(dosfstools)
command -v mcopy >/dev/null || need_pkgs+=(mtools)
command -v sfdisk >/dev/null || [ -x /usr/sbin/sfdisk ] || [ -x /sbin/sfdisk ] || need_pkgs+=(fdisk)
command -v mkfs.ext4 >/dev/null || [ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || need_pkgs+=(e2fsprogs)
# sbsign for scripts/sign.sh and the verified-kexec tests; openssl to unlock their key.
command -v sbsign >/dev/null || need_pkgs+=(sbsigntool)
command -v openssl >/dev/null || need_pkgs+=(openssl)
# gnuplot for scripts/bench.sh's plot.
command -v gnuplot >/dev/null || need_pkgs+=(gnuplot-nox)

# On Debian 12 the fixtures also need bookworm-backports (its Linux 6.12, the kernel the
# crash-kexec tests panic): add the source even when nothing is to be installed.
if command -v apt-get >/dev/null && [ -r /etc/os-release ] && . /etc/os-release \
    && [ "${VERSION_CODENAME:-}" = bookworm ] \
    && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    say "adding bookworm-backports (QEMU >= 9, and the fixtures' Linux 6.12)"
    echo "deb http://deb.debian.org/debian bookworm-backports main" \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    $SUDO apt-get update -qq >/dev/null
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        say "please install: QEMU >= 9 (qemu-system-aarch64), dtc/fdtput, gdb-multiarch, cpio, gcc, g++, pkg-config, glib 2 headers, EDK2 for aarch64 (QEMU_EFI.fd), U-Boot for qemu_arm64, gnuplot"; exit 1
    fi
    . /etc/os-release
    backports=()
    if [ "${VERSION_CODENAME:-}" = bookworm ] && [[ " ${need_pkgs[*]} " == *" qemu-system-arm "* ]]; then
        # bookworm's QEMU is 7.2 (no raspi4b); bookworm-backports (added above) has 10.x.
        backports=(-t bookworm-backports)
    fi
    say "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # apt's and dpkg's progress goes to a log, shown only if something fails.
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    quietly() { "$@" >>"$log" 2>&1 || { cat "$log"; say "failed: $*"; exit 1; }; }
    quietly $SUDO apt-get update -qq
    # qemu-system-arm first, from backports if needed; the rest from the main suite.
    for p in "${need_pkgs[@]}"; do
        if [ "$p" = qemu-system-arm ]; then
            quietly $SUDO apt-get install -y -qq --no-install-recommends "${backports[@]}" qemu-system-arm
        else
            quietly $SUDO apt-get install -y -qq --no-install-recommends "$p"
        fi
    done
fi
[ "$(qemu_major)" -ge 9 ] || { say "QEMU >= 9 is required, found: $(qemu-system-aarch64 --version | head -n1)"; exit 1; }
say "ok: $(qemu-system-aarch64 --version | head -n1), $(rustc --version)"
