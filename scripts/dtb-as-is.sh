#!/usr/bin/env bash
# QEMU arguments that boot IMAGE on `virt` with DTB exactly as it is (its /memory banks
# included). With -kernel, QEMU would replace a -dtb's /memory and /chosen; instead this
# loads the Image, a copy of the DTB (/chosen bootargs, and the initrd's range when there is
# one, set with fdtput) and the initrd with `-device loader`, and starts the CPU (at its
# highest EL, from reset: x1-x3 = 0) in a four-instruction shim that enters the Image with
# x0 = DTB, as the boot protocol asks.
#
# usage: [IMAGE_OFFSET=0x200000] [INITRD_OFFSET=0x8000000] \
#        scripts/dtb-as-is.sh DIR DTB IMAGE BOOTARGS [INITRD]
# Writes DIR/boot.dtb and DIR/shim.bin; prints the arguments, one per line. Everything goes
# into the DTB's lowest bank (2 address and 2 size cells), from its start:
#   +0x100000  the shim       +IMAGE_OFFSET   the Image (any 4 KiB-aligned offset)
#   +0x4000000 the DTB        +INITRD_OFFSET  the initrd
# (QEMU keeps its own DTB blob in virt's first MiB: nothing goes there.)
# Used by qemu.sh --dtb and by the QEMU tests (kernel/tests/qemu/harness.rs).
set -euo pipefail
die() { printf 'dtb-as-is: %s\n' "$*" >&2; exit 2; }
[ $# -ge 4 ] && [ $# -le 5 ] || die "usage: scripts/dtb-as-is.sh DIR DTB IMAGE BOOTARGS [INITRD]"
dir=$1 dtb=$2 image=$3 bootargs=$4 initrd=${5:-}
command -v fdtput >/dev/null || die "needs fdtput (device-tree-compiler: scripts/setup.sh)"
for f in "$dtb" "$image" ${initrd:+"$initrd"}; do [ -f "$f" ] || die "$f: no such file"; done
base=-1
for node in $(fdtget -l "$dtb" / | grep '^memory'); do
    read -r -a reg <<<"$(fdtget -t x "$dtb" "/$node" reg)"
    [ "${#reg[@]}" -ge 4 ] || die "$dtb: /$node reg needs 2 address and 2 size cells"
    b=$(( (0x${reg[0]} << 32) | 0x${reg[1]} ))
    { [ "$base" -lt 0 ] || [ "$b" -lt "$base" ]; } && base=$b
done
[ "$base" -ge 0 ] || die "$dtb has no /memory node"
shim_pa=$((base + 0x100000)) image_pa=$((base + ${IMAGE_OFFSET:-0x200000}))
dtb_pa=$((base + 0x4000000)) initrd_pa=$((base + ${INITRD_OFFSET:-0x8000000}))
mkdir -p "$dir"
cp "$dtb" "$dir/boot.dtb"
fdtput -t s "$dir/boot.dtb" /chosen bootargs "$bootargs"
cells() { printf '%x %x' $(($1 >> 32)) $(($1 & 0xffffffff)); }
loader() { printf -- '-device\nloader,file=%s,addr=%#x,force-raw=on%s\n' "$1" "$2" "${3:-}"; }
if [ -n "$initrd" ]; then
    rd_end=$((initrd_pa + $(stat -c %s "$initrd")))
    # shellcheck disable=SC2046
    fdtput -t x "$dir/boot.dtb" /chosen linux,initrd-start $(cells $initrd_pa)
    # shellcheck disable=SC2046
    fdtput -t x "$dir/boot.dtb" /chosen linux,initrd-end $(cells $rd_end)
    loader "$(realpath "$initrd")" $initrd_pa
fi
le() { local v=$1 n=$2 i; for ((i = 0; i < n; i++)); do printf "\\$(printf %o $(((v >> (8 * i)) & 255)))"; done; }
# ldr x0, [pc, #16]; ldr x4, [pc, #20]; br x4; nop; .quad dtb_pa; .quad image_pa
{ le 0x58000080 4; le 0x580000a4 4; le 0xd61f0080 4; le 0xd503201f 4; le $dtb_pa 8; le $image_pa 8; } \
    > "$dir/shim.bin"
loader "$(realpath "$dir/boot.dtb")" $dtb_pa
loader "$(realpath "$image")" $image_pa
loader "$(realpath "$dir/shim.bin")" $shim_pa ",cpu-num=0"
