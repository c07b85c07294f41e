#!/usr/bin/env bash
# Boots a kernel on QEMU raspi4b through a Raspberry Pi 4 firmware stack, with the files
# Debian ships (scripts/fixtures.sh fetches them into target/fixtures/firmware):
#   tfa        TF-A's BL31 as the armstub, as a Pi 4 whose config.txt says
#              `armstub=bl31.bin`: all four CPUs reset into BL31 at EL3, which adds PSCI to
#              the DTB and enters the kernel at EL2 (the CPUs come up through PSCI CPU_ON)
#   tfa-board  the same with BL31 exactly as Debian ships it (see below: in QEMU its CPU_OFF
#              never returns a CPU, since QEMU does not model the board's warm reset)
#   uboot      U-Boot (rpi_arm64) as the kernel, as `kernel=u-boot.bin`: it `booti`s the
#              kernel with its own copy of the DTB (the CPUs stay on spin tables)
#   tfa+uboot  both: BL31, which enters U-Boot at EL2, which `booti`s the kernel
#
# usage: [KERNEL_ADDR=0x80000] [INITRD_ADDR=...] [RPI4_MEMORY="0 0 3b400000 0 40000000 40000000"]
#        [RPI4_STDOUT_PATH=...] scripts/rpi4-firmware.sh FIRMWARE DIR KERNEL INITRD DTB BOOTARGS
# Writes what this boot needs into DIR (a BL31 with its header filled in, the DTB) and prints
# the QEMU arguments, one per line, after `-M raspi4b` (the caller adds the serial ports).
#
# Memory, as the Pi 4's firmware and config.txt would lay it out:
#   0x0000000  BL31 (its own reset vector; it reserves itself in the DTB)
#   0x0080000  U-Boot (the Pi's kernel address)
#   0x1000000  KERNEL (an arm64 Image: ours or Linux), or $KERNEL_ADDR (e.g. 0x80000, where
#              older firmware and `kernel_old=1` put it)
#   0x4000000  the DTB (BL31 grows it to 1 MiB in place and maps the 4 MiB around it)
#   0x5000000  INITRD
# BL31 learns where the DTB and BL33 are from the header at 0xf0 that the VideoCore
# firmware fills in on a board (plat/rpi/rpi4/rpi4_bl31_setup.c: stub_magic, version,
# dtb_ptr32, kernel_entry32). The file holds the magic 0x5afe570b; the firmware writes 0
# over it to say that it filled the rest in, as this script does.
#
# QEMU needs, beyond the board: `-global arm_gic.has-security-extensions=on` (the Pi's
# GIC-400 has them; without them TF-A's Group 1 set-up leaves Linux without interrupts) and
# the devices QEMU does not model disabled in the DTB (QEMU only does that for a `-dtb`).
set -euo pipefail
die() { printf 'rpi4-firmware: %s\n' "$*" >&2; exit 2; }
[ $# -eq 6 ] || die "usage: scripts/rpi4-firmware.sh tfa|tfa-board|uboot|tfa+uboot DIR KERNEL INITRD DTB BOOTARGS"
firmware=$1 bootargs=$6
dir=$(realpath -m "$2") kernel=$(realpath -m "$3") initrd=$(realpath -m "$4") dtb=$(realpath -m "$5")
cd "$(dirname "$0")/.."
fw=$PWD/target/fixtures/firmware
[ -f "$fw/bl31-qemu.bin" ] && [ -f "$fw/u-boot.bin" ] \
    || die "$fw is missing: scripts/fixtures.sh makes it"
for f in "$kernel" "$initrd" "$dtb"; do [ -f "$f" ] || die "$f: no such file"; done

BL31=0x0 UBOOT=0x80000 KERNEL=${KERNEL_ADDR:-0x1000000} DTB=0x4000000 INITRD=${INITRD_ADDR:-0x5000000}
[[ $firmware == *uboot && $KERNEL -lt $((UBOOT + (2 << 20))) ]] \
    && die "KERNEL_ADDR=$KERNEL would overlap U-Boot at $UBOOT"
image_size=$(od -An -t u8 -j 16 -N 8 "$kernel" | tr -d ' ')   # the arm64 header's image_size
[ $((KERNEL + image_size)) -le $((DTB)) ] \
    || die "$kernel: its image_size $image_size at $KERNEL would reach the DTB at $DTB"
[ $((KERNEL & 0xfff)) -eq 0 ] || die "KERNEL_ADDR=$KERNEL is not 4 KiB aligned"
# The DTB may grow to 1 MiB under BL31 and must not reach the initrd.
[ $((INITRD + $(stat -c %s "$initrd"))) -le $((DTB)) ] || [ $((INITRD - DTB)) -ge $((1 << 20)) ] \
    || die "the DTB's 1 MiB at $DTB would overlap the initrd at $INITRD"
rd_size=$(stat -c %s "$initrd")
mkdir -p "$dir"
out_dtb=$dir/rpi4.dtb
cp "$dtb" "$out_dtb"
# What QEMU raspi4b does not model (it disables these itself only in a -dtb).
for n in /scb/pcie@7d500000 /scb/ethernet@7d580000 /soc/rng@7e104000; do
    fdtput -t s "$out_dtb" "$n" status disabled
done
# The low 960 MiB, as QEMU's VideoCore mailbox reports them (2 GiB raspi4b; the firmware
# writes /memory on a board), or RPI4_MEMORY: (address, size) cells as the firmware would
# write them. The Pi 4 DTB has 2 address cells and 1 size cell.
read -r -a memory <<<"${RPI4_MEMORY:-0 0 3c000000}"
fdtput -t x "$out_dtb" /memory@0 reg "${memory[@]}"
# The PL011 as the console, as Raspberry Pi OS's DTB has it with disable-bt; with
# RPI4_STDOUT_PATH set but empty, the DTB's own (Debian's: serial1, the mini UART).
[ -n "${RPI4_STDOUT_PATH-serial0:115200n8}" ] \
    && fdtput -t s "$out_dtb" /chosen stdout-path "${RPI4_STDOUT_PATH-serial0:115200n8}"
fdtput -t s "$out_dtb" /chosen bootargs "$bootargs"
fdtput -t x "$out_dtb" /chosen linux,initrd-start "$(printf %x $INITRD)"
fdtput -t x "$out_dtb" /chosen linux,initrd-end "$(printf %x $((INITRD + rd_size)))"

loader() { printf -- '-device\nloader,file=%s,addr=%#x,force-raw=on\n' "$1" "$2"; }

# U-Boot runs the DTB's /config bootcmd (CONFIG_OF_CONTROL), at once (bootdelay 0). It hands
# the kernel its own relocated copy of the DTB (fdtcontroladdr), with /chosen kept (U-Boot
# sets bootargs only from its environment, which has none) and the initrd it was given.
if [[ $firmware == *uboot ]]; then
    fdt='${fdtcontroladdr}'
    # Behind BL31 (which grew the DTB to 1 MiB), U-Boot 2023.01 faults fixing up its
    # relocated copy; booting BL31's DTB, where it was handed over, works.
    [ "$firmware" = tfa+uboot ] && fdt=$(printf %#x $DTB)
    fdtput -c "$out_dtb" /config 2>/dev/null || true
    fdtput -t s "$out_dtb" /config bootcmd \
        "echo u-boot: booti $(printf %#x $KERNEL); booti $(printf %#x $KERNEL) $(printf %#x $INITRD):$(printf %x "$rd_size") $fdt"
    fdtput -t i "$out_dtb" /config bootdelay 0
fi

case $firmware in
    tfa|tfa-board|tfa+uboot)
        bl31=$dir/bl31.bin
        if [ "$firmware" = tfa-board ]; then cp "$fw/bl31.bin" "$bl31"; else cp "$fw/bl31-qemu.bin" "$bl31"; fi
        bl33=$KERNEL
        [ "$firmware" = tfa+uboot ] && bl33=$UBOOT
        # The armstub header: stub_magic 0 (filled in), version 0, dtb_ptr32, kernel_entry32.
        le32() { printf "$(printf '\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)))"; }
        { le32 0; le32 0; le32 $DTB; le32 "$bl33"; } | dd of="$bl31" bs=1 seek=$((0xf0)) conv=notrunc status=none
        printf -- '-accel\ntcg,thread=single\n-global\narm_gic.has-security-extensions=on\n'
        loader "$bl31" $BL31
        loader "$out_dtb" $DTB
        [ "$firmware" = tfa+uboot ] && loader "$fw/u-boot.bin" $UBOOT
        ;;
    uboot)
        # QEMU's own boot stub holds the secondaries on the DTB's spin tables, as the Pi's
        # armstub8 does, and enters U-Boot (loaded at the Pi's kernel address) at EL2.
        printf -- '-accel\ntcg,thread=single\n-kernel\n%s\n-dtb\n%s\n' "$fw/u-boot.bin" "$out_dtb"
        ;;
    *) die "unknown firmware '$firmware': tfa, tfa-board, uboot or tfa+uboot" ;;
esac
loader "$kernel" $KERNEL
loader "$initrd" $INITRD
