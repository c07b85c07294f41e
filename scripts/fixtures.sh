#!/usr/bin/env bash
# Fetches test material into target/fixtures (never committed):
#   linux/            Debian's arm64 kernel package (through linux-image-arm64:arm64, since the
#                     archive drops old ABI versions), unpacked: its Image and its DTBs
#   bcm2711-rpi-4-b.dtb, juno-r2.dtb   the real board DTBs from that package
#   virt-1g.dtb       QEMU's own virt DTB (1 GiB, EL2), from -machine dumpdtb
#   userland/         Debian's busybox-static and kexec-tools (with its library closure, as
#                     ../shared/reference/qemu-notes.md §5 lists it), unpacked: the QEMU tests
#                     build Linux initramfs images from it
#   rpi4-qemu.dtb     the Pi 4 DTB with what QEMU raspi4b does not model disabled (for Linux)
#   virt-runtime.dtb  what a -kernel sees after `-dtb` with two /memory nodes: QEMU turns them
#                     into FDT_NOPs and appends its own (a DTB with NOPs, as boot loaders make)
# Prints nothing but progress; a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/fixtures
mkdir -p "$out"
say() { printf 'fixtures: %s\n' "$*"; }

if [ ! -f "$out/juno-r2.dtb" ] || [ ! -f "$out/bcm2711-rpi-4-b.dtb" ] || [ ! -f "$out/linux/Image" ]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        say "enabling the arm64 architecture in dpkg (to download arm64 packages)"
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
        $SUDO dpkg --add-architecture arm64
        $SUDO apt-get update -qq
    fi
    debs=$(mktemp -d)
    # The metapackage names the current ABI's image package.
    pkg=$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*\)/\1/p' | head -n1)
    pkg=${pkg%:arm64}
    [ -n "$pkg" ] || { say "cannot resolve linux-image-arm64:arm64 (apt-get update?)"; exit 1; }
    say "downloading $pkg:arm64"
    (cd "$debs" && apt-get download -qq "$pkg:arm64")
    rm -rf "$out/linux"; mkdir -p "$out/linux"
    dpkg-deb -x "$debs"/*.deb "$out/linux/root"
    ver=${pkg#linux-image-}
    cp "$out/linux/root/boot/vmlinuz-$ver" "$out/linux/Image"
    echo "$ver" > "$out/linux/version"
    dtbs="$out/linux/root/usr/lib/linux-image-$ver"
    cp "$dtbs/broadcom/bcm2711-rpi-4-b.dtb" "$dtbs/arm/juno-r2.dtb" "$out/"
    rm -rf "$debs"
fi

if [ ! -x "$out/userland/sbin/kexec" ] || [ ! -x "$out/userland/bin/busybox" ]; then
    debs=$(mktemp -d)
    say "downloading busybox-static, kexec-tools and its libraries (arm64)"
    (cd "$debs" && apt-get download -qq busybox-static:arm64 kexec-tools:arm64 libc6:arm64 \
        zlib1g:arm64 libxenmisc4.17:arm64 libxentoollog1:arm64 libxencall1:arm64 \
        libxenevtchn1:arm64 libxengnttab1:arm64 libxenforeignmemory1:arm64 \
        libxendevicemodel1:arm64 libxentoolcore1:arm64 2>/dev/null)
    rm -rf "$out/userland"; mkdir -p "$out/userland"
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$out/userland"; done
    # Only what a test initramfs needs: the binaries and the shared libraries.
    rm -rf "$out/userland/usr/share" "$out/userland/etc" "$out/userland/usr/lib/aarch64-linux-gnu/gconv" \
        "$out/userland/usr/lib/aarch64-linux-gnu/audit"
    rm -rf "$debs"
fi

if [ ! -f "$out/rpi4-4g.dtb" ]; then
    # What the Pi firmware writes into /memory on a 4 GiB board: the low GiB less the
    # VideoCore carve-out, and the RAM above 1 GiB up to the peripherals.
    cp "$out/bcm2711-rpi-4-b.dtb" "$out/rpi4-4g.dtb"
    fdtput -t x "$out/rpi4-4g.dtb" /memory@0 reg 0 0 3b400000 0 40000000 bc000000
fi
if [ ! -f "$out/rpi4-qemu.dtb" ]; then
    # For Linux on QEMU raspi4b: the devices QEMU does not model disabled (qemu-notes §2b),
    # or Linux dies probing them.
    cp "$out/bcm2711-rpi-4-b.dtb" "$out/rpi4-qemu.dtb.tmp"
    for n in /soc/txp@7e004000 /soc/hvs@7e400000 /soc/pixelvalve@7e206000 /soc/pixelvalve@7e207000 \
        /soc/pixelvalve@7e20a000 /soc/pixelvalve@7e216000 /soc/clock@7ef00000 \
        /soc/interrupt-controller@7ef00100 /soc/hdmi@7ef00700 /soc/i2c@7ef04500 /soc/hdmi@7ef05700 \
        /soc/i2c@7ef09500 /soc/avs-monitor@7d5d2000 /gpu /scb/gpu@7ec00000 /soc/mailbox@7e00b840 \
        /soc/pwm@7e20c800; do
        fdtput -t s "$out/rpi4-qemu.dtb.tmp" "$n" status disabled
    done
    mv "$out/rpi4-qemu.dtb.tmp" "$out/rpi4-qemu.dtb"
fi
if [ ! -f "$out/virt-1g.dtb" ]; then
    qemu-system-aarch64 -M virt,virtualization=on,dumpdtb="$out/virt-1g.dtb" -cpu cortex-a72 -m 1G \
        -nographic -nic none </dev/null >/dev/null
fi
if [ ! -f "$out/virt-runtime.dtb" ]; then
    two=$(mktemp)
    cp "$out/virt-1g.dtb" "$two"
    fdtput -c "$two" /memory@80000000
    fdtput -t s "$two" /memory@80000000 device_type memory
    fdtput -t x "$two" /memory@80000000 reg 0 80000000 0 10000000
    qemu-system-aarch64 -M virt,virtualization=on,dumpdtb="$out/virt-runtime.dtb" -cpu cortex-a72 \
        -m 2G -nographic -nic none -dtb "$two" -kernel "$out/linux/Image" \
        -append "console=ttyAMA0 fixture" </dev/null >/dev/null
    rm -f "$two"
fi
say "ok: $(cat "$out/linux/version"), $(ls "$out"/*.dtb | wc -l) DTBs in $out"
