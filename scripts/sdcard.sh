#!/usr/bin/env bash
# Writes a Raspberry Pi 4 SD card that boots KERNEL (this kernel's Image, or Linux's) with
# INITRD: the files into DIR, and with --image also a disk image to write to a card
# (`dd if=FILE of=/dev/sdX bs=4M`): an MBR with one FAT32 partition holding them.
#
# usage: scripts/sdcard.sh [--tfa] [--uboot] [--cmdline TEXT] [--image FILE] DIR KERNEL INITRD
#
# The card (what a blank one needs, from Debian's packages; scripts/fixtures.sh fetches them):
#   start4.elf, fixup4.dat  the VideoCore firmware (raspi-firmware, non-free-firmware)
#   bcm2711-rpi-4-b.dtb     Debian's Pi 4 DTB (linux-image-*-arm64): its console is the mini
#                           UART (stdout-path serial1) on GPIO 14/15; it has no __symbols__,
#                           so no overlays apply to it (and Debian ships none)
#   config.txt              arm_64bit=1, enable_uart=1, kernel=kernel8.img, the initramfs
#                           after the kernel; no kernel_address (the firmware honours the
#                           Image header: 0x200000)
#   cmdline.txt             TEXT (--cmdline). Default: empty (the DTB names the console), and
#                           with --tfa `console=ttyS0,115200`: BL31 rewrites stdout-path to
#                           serial0 (plat/rpi/rpi4/rpi4_bl31_setup.c), which in Debian's DTB is
#                           the PL011 wired to Bluetooth, so the command line names the mini UART
#   kernel8.img             KERNEL
#   rootfs.cpio             INITRD
# Options:
#   --tfa     TF-A's BL31 (arm-trusted-firmware, rpi4/bl31.bin) as `armstub=bl31.bin`: PSCI,
#             so that CPUs can be turned off and on again at every kexec
#   --uboot   U-Boot (u-boot-rpi, rpi_arm64/u-boot.bin) as `kernel=u-boot.bin`, which boots
#             kernel8.img and rootfs.cpio through extlinux/extlinux.conf (its distro boot)
#   --image FILE  also the disk image (needs mkfs.vfat, mcopy and sfdisk: scripts/setup.sh)
set -euo pipefail
die() { printf 'sdcard: %s\n' "$*" >&2; exit 2; }
usage="usage: scripts/sdcard.sh [--tfa] [--uboot] [--cmdline TEXT] [--image FILE] DIR KERNEL INITRD"
tfa=0 uboot=0 cmdline="" cmdline_set=0 image=""
while [ $# -gt 0 ]; do
    case $1 in
        --tfa) tfa=1; shift ;;
        --uboot) uboot=1; shift ;;
        --cmdline) [ $# -ge 2 ] || die "$usage"; cmdline=$2; cmdline_set=1; shift 2 ;;
        --image) [ $# -ge 2 ] || die "$usage"; image=$(realpath -m "$2"); shift 2 ;;
        -*) die "unknown option $1; $usage" ;;
        *) break ;;
    esac
done
[ $# -eq 3 ] || die "$usage"
dir=$(realpath -m "$1") kernel=$(realpath -m "$2") initrd=$(realpath -m "$3")
[ "$tfa" = 1 ] && [ "$cmdline_set" = 0 ] && cmdline="console=ttyS0,115200"
cd "$(dirname "$0")/.."
for f in "$kernel" "$initrd"; do [ -f "$f" ] || die "$f: no such file"; done
[ "$(od -An -c -j 56 -N 4 "$kernel" | tr -d ' ')" = 'ARMd' ] \
    || die "$kernel: not an arm64 Image (no ARM\\x64 magic at 0x38; the firmware takes no compressed kernel)"
scripts/fixtures.sh >&2
fx=target/fixtures
mkdir -p "$dir"
cp "$fx/raspi-firmware/start4.elf" "$fx/raspi-firmware/fixup4.dat" "$fx/bcm2711-rpi-4-b.dtb" "$dir/"
cp "$kernel" "$dir/kernel8.img"
cp "$initrd" "$dir/rootfs.cpio"
printf '%s\n' "$cmdline" > "$dir/cmdline.txt"
{
    echo "# Written by scripts/sdcard.sh: a 64-bit kernel at the address its header asks for."
    echo "arm_64bit=1"
    echo "enable_uart=1"
    echo "device_tree=bcm2711-rpi-4-b.dtb"
    if [ "$tfa" = 1 ]; then
        cp "$fx/firmware/bl31.bin" "$dir/"
        echo "armstub=bl31.bin"
    fi
    if [ "$uboot" = 1 ]; then
        cp "$fx/firmware/u-boot.bin" "$dir/"
        echo "kernel=u-boot.bin"
    else
        echo "kernel=kernel8.img"
        echo "initramfs rootfs.cpio followkernel"
    fi
} > "$dir/config.txt"
if [ "$uboot" = 1 ]; then
    mkdir -p "$dir/extlinux"
    {
        echo "default kexec-kernel"
        echo "label kexec-kernel"
        echo "    kernel /kernel8.img"
        echo "    initrd /rootfs.cpio"
        echo "    fdt /bcm2711-rpi-4-b.dtb"
        echo "    append $cmdline"
    } > "$dir/extlinux/extlinux.conf"
else
    rm -rf "$dir/extlinux"
fi

if [ -n "$image" ]; then
    PATH=$PATH:/usr/sbin:/sbin
    for t in mkfs.vfat mcopy sfdisk; do
        command -v $t >/dev/null || die "--image needs $t (scripts/setup.sh installs it)"
    done
    # The files plus room, at least 64 MiB (FAT32's smallest comfortable size), in MiB.
    need=$(du -sm "$dir" | cut -f1)
    size=$(( need + 32 < 64 ? 64 : need + 32 ))
    part=$(mktemp); trap 'rm -f "$part"' EXIT
    rm -f "$part"
    mkfs.vfat -F 32 -n BOOT -C "$part" $((size * 1024)) >/dev/null
    (cd "$dir" && mcopy -s -i "$part" ./* ::/)
    # An MBR with one partition from 1 MiB: type 0x0c (FAT32 LBA), bootable.
    truncate -s $(( (size + 1) << 20 )) "$image.partial"
    printf 'label: dos\nstart=2048, type=c, bootable\n' | sfdisk -q "$image.partial"
    dd if="$part" of="$image.partial" bs=1M seek=1 conv=notrunc status=none
    mv "$image.partial" "$image"
    echo "sdcard: $image ($((size + 1)) MiB): write it with dd if=$image of=/dev/sdX bs=4M" >&2
fi
echo "sdcard: $dir: $(cd "$dir" && find . -type f | sort | tr '\n' ' ')" >&2
