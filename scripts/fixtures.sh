#!/usr/bin/env bash
# Fetches test material into target/fixtures (never committed):
#   linux/            Debian's arm64 kernel package (through linux-image-arm64:arm64, since the
#                     archive drops old ABI versions), unpacked: its Image and its DTBs
#   bcm2711-rpi-4-b.dtb, juno-r2.dtb   the real board DTBs from that package
#   linux-6.12/       the newest Linux Debian has (6.12 or later: bookworm-backports on Debian
#                     12), its Image only: the
#                     kernel that panics in the crash-kexec tests (6.1's kexec -p writes an ELF
#                     core header without _text, which no reader can use)
#   virt-1g.dtb       QEMU's own virt DTB (1 GiB, EL2), from -machine dumpdtb
#   virt-gicv3.dtb    the same with a GICv3 (and its ITS) and 4 CPUs
#   userland/         Debian's busybox-static and kexec-tools (with its library closure, as
#                     ../shared/reference/qemu-notes.md §5 lists it), unpacked: the QEMU tests
#                     build Linux initramfs images from it
#   rpi4-4g.dtb       the Pi 4 DTB with /memory as the firmware fills it in on a 4 GiB board
#   rpi4-qemu.dtb     the Pi 4 DTB with what QEMU raspi4b does not model disabled (for Linux)
#   virt-runtime.dtb  what a -kernel sees after `-dtb` with two /memory nodes: QEMU turns them
#                     into FDT_NOPs and appends its own (a DTB with NOPs, as boot loaders make)
#   raspi-firmware/   the Pi 4's VideoCore firmware (start4.elf, fixup4.dat) from Debian's
#                     raspi-firmware (non-free-firmware), for scripts/sdcard.sh
#   debian-uefi-ca.der  the Debian Secure Boot CA (from shim-unsigned), which Debian's
#                     signed kernels (linux/Image) chain to: the verified-kexec tests trust it
#   firmware/         the Raspberry Pi 4's firmware stacks as Debian ships them: TF-A's BL31
#                     (bl31.bin, from arm-trusted-firmware) and U-Boot (u-boot.bin, from
#                     u-boot-rpi's rpi_arm64), plus bl31-qemu.bin, the test-only copy of BL31
#                     whose CPU_OFF does in QEMU what the board's warm reset does (see below)
#
# Every fixture is made under a temporary name (.NAME.partial) and renamed only when it is
# complete, so a run that fails or is killed leaves nothing a later run takes for finished;
# the next run removes what such a run left and makes the fixture again
# (scripts/fixtures-test.sh shows it). FIXTURES_DIR overrides target/fixtures.
# Prints nothing but progress; a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${FIXTURES_DIR:-target/fixtures}
mkdir -p "$out"
say() { printf 'fixtures: %s\n' "$*"; }

# Whatever an interrupted run left half-made.
rm -rf "$out"/.*.partial
# Runs from before fixtures were made atomically (no .atomic stamp) could leave a fixture
# half-made under its final name: remake the derived DTBs (cheap) and any unpacked package
# that lacks its last file.
if [ ! -e "$out/.atomic" ]; then
    rm -f "$out/rpi4-4g.dtb" "$out/rpi4-qemu.dtb" "$out/virt-runtime.dtb"
    [ -f "$out/linux/version" ] || rm -rf "$out/linux"
    [ -x "$out/userland/sbin/kexec" ] && [ -x "$out/userland/bin/busybox" ] || rm -rf "$out/userland"
    touch "$out/.atomic"
fi
scratch=()
trap 'rm -rf "$out"/.*.partial "${scratch[@]}"' EXIT

# fixture NAME STEP...: unless $out/NAME exists, runs STEP with the temporary path (a file or
# directory to create) as its last argument, then renames it to $out/NAME.
fixture() {
    local name=$1; shift
    [ -e "$out/$name" ] && return 0
    local tmp="$out/.$name.partial"
    "$@" "$tmp"
    mv -T "$tmp" "$out/$name"
}

# --- Debian's arm64 Linux kernel package -----------------------------------
need_arm64() {
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        say "enabling the arm64 architecture in dpkg (to download arm64 packages)"
        local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo dpkg --add-architecture arm64
        $sudo apt-get update -qq
    fi
}
# download DIR PKG...: the arm64 .debs of PKG... into a fresh scratch directory DIR.
download() {
    local dir; dir=$(mktemp -d); scratch+=("$dir")
    (cd "$dir" && apt-get download -qq "$@" 2>/dev/null) || { say "apt-get download $* failed"; return 1; }
    debs=$dir
}
linux_package() {
    local tmp=$1
    need_arm64
    # The metapackage names the current ABI's image package.
    local pkg
    pkg=$(apt-cache depends linux-image-arm64:arm64 | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*\)/\1/p' | head -n1)
    pkg=${pkg%:arm64}
    [ -n "$pkg" ] || { say "cannot resolve linux-image-arm64:arm64 (apt-get update?)"; return 1; }
    say "downloading $pkg:arm64"
    download "$pkg:arm64"
    mkdir "$tmp"
    dpkg-deb -x "$debs"/*.deb "$tmp/root"
    local ver=${pkg#linux-image-}
    cp "$tmp/root/boot/vmlinuz-$ver" "$tmp/Image"
    echo "$ver" > "$tmp/version"
}
fixture linux linux_package
# The newest Linux the archive has (bookworm-backports on Debian 12), for the crash tests.
linux_backports() {
    local tmp=$1
    need_arm64
    local ver pkg
    # The newest version any source has (madison lists the highest first).
    ver=$(apt-cache madison linux-image-arm64:arm64 | awk -F'|' '{ gsub(/ /, "", $2); print $2; exit }')
    case $ver in
    6.1[2-9]* | 6.[2-9]* | [7-9].*) ;;
    *) say "linux-image-arm64:arm64 is at most '$ver' here: Linux >= 6.12 is needed (on Debian 12, scripts/setup.sh adds bookworm-backports)"; return 1 ;;
    esac
    pkg=$(apt-cache depends "linux-image-arm64:arm64=$ver" | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*\)/\1/p' | head -n1)
    pkg=${pkg%:arm64}
    say "downloading $pkg:arm64 (bookworm-backports)"
    download "$pkg:arm64"
    local x; x=$(mktemp -d); scratch+=("$x")
    dpkg-deb -x "$debs"/*.deb "$x"
    mkdir "$tmp"
    cp "$x/boot/vmlinuz-${pkg#linux-image-}" "$tmp/Image"
    echo "${pkg#linux-image-}" > "$tmp/version"
}
fixture linux-6.12 linux_backports
linux_dtbs="$out/linux/root/usr/lib/linux-image-$(cat "$out/linux/version")"
fixture bcm2711-rpi-4-b.dtb cp "$linux_dtbs/broadcom/bcm2711-rpi-4-b.dtb"
fixture juno-r2.dtb cp "$linux_dtbs/arm/juno-r2.dtb"

# --- Debian's busybox and kexec-tools --------------------------------------
userland() {
    local tmp=$1
    need_arm64
    say "downloading busybox-static, kexec-tools and its libraries (arm64)"
    download busybox-static:arm64 kexec-tools:arm64 libc6:arm64 \
        zlib1g:arm64 libxenmisc4.17:arm64 libxentoollog1:arm64 libxencall1:arm64 \
        libxenevtchn1:arm64 libxengnttab1:arm64 libxenforeignmemory1:arm64 \
        libxendevicemodel1:arm64 libxentoolcore1:arm64
    mkdir "$tmp"
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$tmp"; done
    # Only what a test initramfs needs: the binaries and the shared libraries.
    rm -rf "$tmp/usr/share" "$tmp/etc" "$tmp/usr/lib/aarch64-linux-gnu/gconv" \
        "$tmp/usr/lib/aarch64-linux-gnu/audit"
}
fixture userland userland

# --- DTBs derived from those -----------------------------------------------
rpi4_4g() {
    # What the Pi firmware writes into /memory on a 4 GiB board: the low GiB less the
    # VideoCore carve-out, and the RAM above 1 GiB up to the peripherals.
    cp "$out/bcm2711-rpi-4-b.dtb" "$1"
    fdtput -t x "$1" /memory@0 reg 0 0 3b400000 0 40000000 bc000000
}
fixture rpi4-4g.dtb rpi4_4g

rpi4_qemu() {
    # For Linux on QEMU raspi4b: the devices QEMU does not model disabled (qemu-notes §2b),
    # or Linux dies probing them.
    cp "$out/bcm2711-rpi-4-b.dtb" "$1"
    for n in /soc/txp@7e004000 /soc/hvs@7e400000 /soc/pixelvalve@7e206000 /soc/pixelvalve@7e207000 \
        /soc/pixelvalve@7e20a000 /soc/pixelvalve@7e216000 /soc/clock@7ef00000 \
        /soc/interrupt-controller@7ef00100 /soc/hdmi@7ef00700 /soc/i2c@7ef04500 /soc/hdmi@7ef05700 \
        /soc/i2c@7ef09500 /soc/avs-monitor@7d5d2000 /gpu /scb/gpu@7ec00000 /soc/mailbox@7e00b840 \
        /soc/pwm@7e20c800; do
        fdtput -t s "$1" "$n" status disabled
    done
}
fixture rpi4-qemu.dtb rpi4_qemu

virt_1g() {
    qemu-system-aarch64 -M virt,virtualization=on,dumpdtb="$1" -cpu cortex-a72 -m 1G \
        -nographic -nic none </dev/null >/dev/null
}
fixture virt-1g.dtb virt_1g
virt_gicv3() {
    qemu-system-aarch64 -M virt,virtualization=on,gic-version=3,dumpdtb="$1" -cpu cortex-a72 \
        -m 1G -smp 4 -nographic -nic none </dev/null >/dev/null
}
fixture virt-gicv3.dtb virt_gicv3

virt_runtime() {
    local two="$out/.virt-two-banks.dtb.partial"
    cp "$out/virt-1g.dtb" "$two"
    fdtput -c "$two" /memory@80000000
    fdtput -t s "$two" /memory@80000000 device_type memory
    fdtput -t x "$two" /memory@80000000 reg 0 80000000 0 10000000
    qemu-system-aarch64 -M virt,virtualization=on,dumpdtb="$1" -cpu cortex-a72 \
        -m 2G -nographic -nic none -dtb "$two" -kernel "$out/linux/Image" \
        -append "console=ttyAMA0 fixture" </dev/null >/dev/null
}
fixture virt-runtime.dtb virt_runtime

# --- The Raspberry Pi 4's firmware: TF-A and U-Boot ------------------------
# u32 FILE OFFSET: the little-endian 32-bit word at OFFSET, as 8 hex digits.
u32() { od -An -tx4 -j "$(($2))" -N4 "$1" | tr -d ' \n'; }
# patch_word FILE OFFSET OLD NEW WHAT: replaces the word OLD at OFFSET with NEW, or fails naming both.
patch_word() {
    local file=$1 at=$2 old=$3 new=$4 what=$5 found
    found=$(u32 "$file" "$at")
    if [ "$found" != "$old" ]; then
        say "$file: expected $old at $at (before: $what), found $found: not Debian's TF-A 2.8 BL31?"
        return 1
    fi
    printf "$(printf '\\x%02x' $((0x$new & 255)) $((0x$new >> 8 & 255)) $((0x$new >> 16 & 255)) \
        $((0x$new >> 24)))" | dd of="$file" bs=1 seek=$(($at)) conv=notrunc status=none
}
# bl31_qemu IN OUT: Debian's TF-A 2.8 rpi4 BL31 (file offset = address, loaded at 0) with its
# CPU_OFF made to do what the board does. plat/rpi/common/rpi3_pm.c, rpi3_pwr_down_wfi, ends a
# CPU_OFF with write_rmr_el3(RMR_EL3_RR_BIT | RMR_EL3_AA64_BIT) and a wfi loop: on a Pi 4 the
# core warm-resets into BL31's entry at 0, whose cold path (bl31_entrypoint,
# el3_entrypoint_common, plat_secondary_cold_boot_setup in plat/rpi/common/aarch64/
# plat_helpers.S) parks it in the hold pen where CPU_ON finds it. QEMU ignores the RMR_EL3
# write (its RMR_EL3 is a constant), so the core never leaves the wfi and no later CPU_ON
# brings it back. The patch branches from the `msr rmr_el3, x0` to five instructions in the
# zero padding at the end of BL31's .text (0x9ac0, executable while the EL3 MMU is on) that do
# what the reset does: SCTLR_EL3 to the Cortex-A72's reset value (MMU, caches and WXN off; with
# the MMU on, page 0 is execute-never), then a branch to the reset vector at 0.
bl31_qemu() {
    cp "$1" "$2"
    patch_word "$2" 0x889c d51ec040 14000489 "msr rmr_el3, x0 -> b 0x9ac0"
    patch_word "$2" 0x9ac0 00000000 d2810700 "mov x0, #0x838"
    patch_word "$2" 0x9ac4 00000000 f2a018a0 "movk x0, #0xc5, lsl #16 (x0 = 0x00c50838)"
    patch_word "$2" 0x9ac8 00000000 d51e1000 "msr sctlr_el3, x0"
    patch_word "$2" 0x9acc 00000000 d5033fdf "isb"
    patch_word "$2" 0x9ad0 00000000 17ffd94c "b 0x0"
}
rpi4_firmware() {
    local tmp=$1
    need_arm64
    say "downloading arm-trusted-firmware and u-boot-rpi (arm64)"
    download arm-trusted-firmware:arm64 u-boot-rpi:arm64
    local x; x=$(mktemp -d); scratch+=("$x")
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$x"; done
    mkdir "$tmp"
    cp "$x/usr/lib/arm-trusted-firmware/rpi4/bl31.bin" "$tmp/bl31.bin"
    cp "$x/usr/lib/u-boot/rpi_arm64/u-boot.bin" "$tmp/u-boot.bin"
    bl31_qemu "$tmp/bl31.bin" "$tmp/bl31-qemu.bin"
    (cd "$debs" && ls ./*.deb) | sed 's|^\./||' > "$tmp/packages"
}
fixture firmware rpi4_firmware

# The Pi 4's VideoCore firmware (start4.elf, fixup4.dat) for scripts/sdcard.sh, from Debian's
# raspi-firmware, which is in the non-free-firmware component: fetched through a source list
# of its own (apt's lists in a scratch directory), so the system's sources stay as they are.
raspi_firmware() {
    local tmp=$1 apt; apt=$(mktemp -d); scratch+=("$apt")
    mkdir -p "$apt/lists/partial" "$apt/debs"
    . /etc/os-release
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${VERSION_CODENAME:-bookworm} non-free-firmware" \
        > "$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt/lists" -o Debug::NoLocking=1)
    say "downloading raspi-firmware (non-free-firmware)"
    apt-get "${opts[@]}" update -qq >/dev/null 2>&1 || { say "apt-get update (non-free-firmware) failed"; return 1; }
    (cd "$apt/debs" && apt-get "${opts[@]}" download -qq raspi-firmware 2>/dev/null) \
        || { say "apt-get download raspi-firmware failed"; return 1; }
    local x="$apt/x"
    dpkg-deb -x "$apt"/debs/raspi-firmware_*.deb "$x"
    mkdir "$tmp"
    cp "$x/usr/lib/raspi-firmware/start4.elf" "$x/usr/lib/raspi-firmware/fixup4.dat" "$tmp/"
    (cd "$apt/debs" && ls ./*.deb) | sed 's|^\./||' > "$tmp/packages"
}
fixture raspi-firmware raspi_firmware

# The Debian Secure Boot CA, as Debian's shim-unsigned ships it.
debian_ca() {
    local tmp=$1
    need_arm64
    say "downloading shim-unsigned (the Debian Secure Boot CA)"
    download shim-unsigned:arm64
    local x; x=$(mktemp -d); scratch+=("$x")
    dpkg-deb -x "$debs"/shim-unsigned_*.deb "$x"
    cp "$x/usr/share/shim/debian-uefi-ca.der" "$tmp"
}
fixture debian-uefi-ca.der debian_ca

say "ok: $(cat "$out/linux/version") and $(cat "$out/linux-6.12/version"), $(ls "$out"/*.dtb | wc -l) DTBs and the Pi 4 firmware in $out"
