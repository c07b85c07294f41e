#!/usr/bin/env bash
# Fuzzes every parser and editor the kernel runs on input it did not make (fuzz/: the
# kernel's own code, built for the host), each target for SECONDS (default 60), from seed
# corpora made of real files: Debian's and this kernel's Images, the fixtures' DTBs (QEMU
# virt, Raspberry Pi 4, Juno r2), initramfs images, gzip files.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Prints one line per target (inputs run, corpus size, distinct outcomes). A panic, a hang or
# an oversized allocation fails the run and saves the input under target/fuzz-crashes/;
# every one found becomes a regression test (fuzz/src/regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
scripts/fixtures.sh >/dev/null
fx=target/fixtures
seeds=target/fuzz-seeds
rm -rf "$seeds"; mkdir -p "$seeds"/{image,gzip,cpio,dtb,uefi,efi,cmdline,chain,gicv3,elfcore}
image=$(scripts/build.sh | tail -n1)
# Images: the header and the PE header are all that is read; 64 KiB of each.
head -c 65536 "$fx/linux/Image" > "$seeds/image/debian-linux"
head -c 65536 "$image" > "$seeds/image/this-kernel"
# gzip: an Image.gz's start (as kexec -l sees an Image.gz) and a gzip initramfs.
head -c 262144 "$fx/linux/Image" | gzip -9 > "$seeds/gzip/linux-part.gz"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/rd/bin" "$tmp/rd/etc"
printf 'echo hello\nls /\n' > "$tmp/rd/init.rc"
head -c 5000 "$fx/userland/bin/busybox" > "$tmp/rd/bin/busybox"
printf 'x\n' > "$tmp/rd/etc/motd"
scripts/mkinitramfs.sh "$tmp/rd" "$seeds/cpio/small.cpio" >/dev/null
gzip -9c "$seeds/cpio/small.cpio" > "$seeds/gzip/small.cpio.gz"
# DTBs: QEMU's and the boards'.
cp "$fx"/*.dtb "$seeds/dtb/"
# Command lines the tests and the README use.
printf '%s' 'console=ttyAMA0 earlycon panic=-1 kexec.chain=20 kexec.payload=64M kexec.mmu=both' > "$seeds/cmdline/chain"
printf '%s' 'kexec -l /Image --initrd=/rootfs.cpio.gz --append="console=ttyAMA0 panic=-1"' > "$seeds/cmdline/kexec"
cargo build -q --profile fuzz -p fuzz
target/fuzz/fuzz --seconds "$secs" --seeds "$seeds" "$@"
