#!/usr/bin/env bash
# Measures kexec under QEMU (TCG) and prints a table. Not part of the test suite: timing goals
# are measured here, never asserted in tests.
#   1. relocation rate with the MMU on and off in one run (a chain alternating the two,
#      kexec.mmu=both, 64 MiB payload), next to the kernel's own memcpy rate in that run;
#   2. hop latency (kexec -e to the next kernel's `ready`) over a 100-hop chain under
#      -icount (deterministic counter): the first ten hops against the last ten;
#   3. transitional page-table pages at 1 GiB and 8 GiB.
# Usage: scripts/bench.sh [--image FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
image=""
[ "${1:-}" = "--image" ] && image=$2
[ -n "$image" ] || image=$(scripts/build.sh | tail -n1)
work=target/bench
mkdir -p "$work/rootfs"
printf 'poweroff\n' > "$work/rootfs/init.rc"
scripts/mkinitramfs.sh "$work/rootfs" "$work/rootfs.cpio" >/dev/null

chain() { # MEM APPEND [QEMU ARGS...] -> console log on stdout
    local mem=$1 append=$2
    shift 2
    timeout 1200 qemu-system-aarch64 -M virt,virtualization=on -cpu cortex-a72 -m "$mem" \
        -nographic -nic none -no-reboot -kernel "$image" -initrd "$work/rootfs.cpio" \
        -append "$append" "$@" </dev/null | tr -d '\r'
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

echo "kexec benchmark: $(qemu-system-aarch64 --version | head -n1), cortex-a72, $(nproc) host CPUs"
echo
chain 1G "kexec.chain=20 kexec.payload=64M kexec.mmu=both" > "$work/both.log"
grep -q '^chain: PASS' "$work/both.log" || { echo "chain failed:"; cat "$work/both.log"; exit 1; }
memcpy=$(sed -n 's/^memcpy: .* = \([0-9]*\) MiB\/s/\1/p' "$work/both.log")
avg() { awk '{ s += $1; n++ } END { if (n) printf "%d", s / n; else print "-" }'; }
on=$(grep '^chain: hop=' "$work/both.log" | grep 'reloc_mmu=on' | field reloc_rate | tr -d 'MiB/s' | avg)
off=$(grep '^chain: hop=' "$work/both.log" | grep 'reloc_mmu=off' | field reloc_rate | tr -d 'MiB/s' | avg)
on_us=$(grep '^chain: hop=' "$work/both.log" | grep 'reloc_mmu=on' | field reloc_us | avg)
off_us=$(grep '^chain: hop=' "$work/both.log" | grep 'reloc_mmu=off' | field reloc_us | avg)
printf '| %-44s | %s |\n' "what (1 GiB, 64 MiB payload, 20 hops)" "value"
printf '| %-44s | %s |\n' "--" "--"
printf '| %-44s | %s MiB/s |\n' "in-guest memcpy (16 MiB)" "$memcpy"
printf '| %-44s | %s MiB/s (%s us per hop) |\n' "relocation, MMU and caches on" "$on" "$on_us"
printf '| %-44s | %s MiB/s (%s us per hop) |\n' "relocation, MMU off" "$off" "$off_us"

# With -icount the counter follows the instruction count, so hop latencies are free of host
# scheduling noise and comparable from hop to hop (without it they vary by 2x run to run).
chain 1G "kexec.chain=100 kexec.payload=16M" -icount shift=0,sleep=off > "$work/100.log"
grep -q '^chain: PASS' "$work/100.log" || { echo "100-hop chain failed"; exit 1; }
grep '^chain: hop=' "$work/100.log" | tail -n +2 | field hop_us > "$work/hop_us"
first=$(head -n 10 "$work/hop_us" | avg)
last=$(tail -n 10 "$work/hop_us" | avg)
printf '| %-44s | %s us |\n' "hop latency, hops 1-10 (100 hops, 16M, icount)" "$first"
printf '| %-44s | %s us |\n' "hop latency, hops 91-100" "$last"
free=$(grep '^chain: hop=' "$work/100.log" | tail -n +2 | field free | sort -u | wc -l)
printf '| %-44s | %s |\n' "distinct free= values over hops 1-100" "$free"

for mem in 1G 8G; do
    chain "$mem" "kexec.chain=1 kexec.payload=1M" > "$work/tt-$mem.log"
    tt=$(grep '^chain: hop=1/' "$work/tt-$mem.log" | field ttpages)
    printf '| %-44s | %s |\n' "transitional table pages, $mem" "$tt"
done

# 4. kexec latency into Linux: from `kexec -e` to the next kernel's first console line (Linux
#    with earlycon), this kernel -> Linux against Linux -> Linux with kexec-tools (-i: no
#    purgatory hash), same Linux Image and initramfs, same QEMU, -icount shift=0,sleep=off.
#    Host time stamps each console line.
scripts/fixtures.sh >/dev/null
fx=target/fixtures
lx="$work/linux-rd"; rm -rf "$lx"; mkdir -p "$lx/bin" "$lx/dev" "$lx/proc" "$lx/sys"
cp "$fx/userland/bin/busybox" "$lx/bin/"
cat > "$lx/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
echo LINUX-USERSPACE-OK
/bin/busybox poweroff -f
INIT
chmod +x "$lx/init"
scripts/mkinitramfs.sh "$lx" "$work/linux.cpio"
append="console=ttyAMA0 earlycon panic=-1"

ours="$work/ours-rd"; rm -rf "$ours"; mkdir -p "$ours"
cp "$fx/linux/Image" "$ours/Image"; cp "$work/linux.cpio" "$ours/linux.cpio"
printf 'kexec -l /Image --initrd=/linux.cpio --append="%s"\nkexec -e\n' "$append" > "$ours/init.rc"
scripts/mkinitramfs.sh "$ours" "$work/ours.cpio"

first="$work/first-rd"; rm -rf "$first"; cp -a "$fx/userland" "$first"
mkdir -p "$first/dev" "$first/proc" "$first/sys"
cp "$fx/linux/Image" "$first/Image"; cp "$work/linux.cpio" "$first/linux.cpio"
cat > "$first/init" <<INIT
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/sbin/kexec -i -l /Image --initrd=/linux.cpio --append="$append"
echo KEXEC-E-NOW
/sbin/kexec -e
INIT
chmod +x "$first/init"
scripts/mkinitramfs.sh "$first" "$work/first.cpio"

stamp() { python3 -c '
import sys, time
t0 = time.monotonic()
for line in sys.stdin.buffer:
    sys.stdout.write("%.4f %s\n" % (time.monotonic() - t0, line.decode("utf-8", "replace").rstrip()))
    sys.stdout.flush()'; }
latency() { # LOG START_PATTERN -> ms from START to the next "Booting Linux on physical CPU"
    awk -v s="$2" 'index($0, s) && !t0 { t0 = $1 } t0 && /Booting Linux on physical CPU/ { printf "%d", ($1 - t0) * 1000; exit }' "$1"
}
q=(qemu-system-aarch64 -M virt,virtualization=on -cpu cortex-a72 -m 1G -nographic -nic none
   -no-reboot -icount shift=0,sleep=off)
for i in 1 2 3; do
    "${q[@]}" -kernel "$image" -initrd "$work/ours.cpio" </dev/null 2>&1 | stamp > "$work/ours-$i.log"
    "${q[@]}" -kernel "$fx/linux/Image" -initrd "$work/first.cpio" -append "$append" </dev/null 2>&1 \
        | stamp > "$work/linux-$i.log"
    o=$(latency "$work/ours-$i.log" "kexec: entering")
    l=$(latency "$work/linux-$i.log" "KEXEC-E-NOW")
    printf '| %-44s | %s ms (Linux -> Linux: %s ms) |\n' "kexec -e -> Linux's first line, run $i" "$o" "$l"
done
