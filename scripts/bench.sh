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
