#!/usr/bin/env bash
# Measures kexec under QEMU (TCG) and prints a table. Not part of the test suite: timing goals
# are measured here, never asserted in tests.
#   1. relocation rate with the MMU on and off in one run (a chain alternating the two,
#      kexec.mmu=both, 64 MiB payload), next to the kernel's own memcpy rate in that run;
#   2. hop latency (kexec -e to the next kernel's `ready`) over a 100-hop chain under
#      -icount (deterministic counter): the first ten hops against the last ten;
#   3. transitional page-table pages at 1 GiB and 8 GiB.
#   4. kexec into Linux against Linux's own kexec (see below), with a table and a plot;
#   5. boot to `ready` at 1 GiB and 8 GiB.
# Usage: scripts/bench.sh [--image FILE] [--linux-only]
#   BENCH_PAYLOADS="16 64 256" (MiB) and BENCH_RUNS=3 (host-time runs) set part 4's matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
image=""
only=""
while [ $# -gt 0 ]; do
    case $1 in
    --image) image=$2; shift 2 ;;
    --linux-only) only=linux; shift ;;
    *) echo "usage: scripts/bench.sh [--image FILE] [--linux-only]" >&2; exit 2 ;;
    esac
done
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

chain_benchmarks() {
    chain 1G "kexec.chain=20 kexec.payload=64M kexec.mmu=both kexec.copy=all" > "$work/both.log"
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
    printf '| %-44s | %s |\n' "memcpy / relocation (MMU on), this run" "$(awk -v m="$memcpy" -v r="$on" 'BEGIN { printf "%.2f", m / r }')"

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

}
echo "kexec benchmark: $(qemu-system-aarch64 --version | head -n1), cortex-a72, $(nproc) host CPUs"
echo
[ "$only" = linux ] || chain_benchmarks

# 4. kexec into Linux: ours against Linux's own (kexec-tools, with -i and without), from the
#    same starting line to the same end: from the console line printed as `kexec -e` is issued
#    (our shell's echo of it; Linux's `echo KEXEC-E-NOW` just before /sbin/kexec -e) to the
#    next kernel's first line ("Booting Linux on physical CPU"), and `kexec -l` itself (from
#    its line to the next). The next kernel is the same Debian Image every time, with an
#    initrd payload of BENCH_PAYLOADS MiB. Ours: zero copy (the default), every page copied
#    (--copy-all), and copied with the MMU off. One vCPU, 2 GiB.
#    Guest time: tools/console-stamp counts instructions up to each console line under
#    -icount shift=0,sleep=off (1 instruction = 1 ns; exact, one run). Host time: each line
#    stamped as QEMU prints it, median of BENCH_RUNS runs without icount.
#    Writes target/bench/kexec.md (table), kexec.dat and kexec.png (gnuplot).
scripts/fixtures.sh >/dev/null
fx=target/fixtures
payloads=${BENCH_PAYLOADS:-16 64 256}
runs=${BENCH_RUNS:-3}
plugin=$(tools/console-stamp/build.sh | tail -n1)
append="console=ttyAMA0 earlycon panic=-1"
q=(qemu-system-aarch64 -M virt,virtualization=on -cpu cortex-a72 -m 2G -nographic -nic none
   -no-reboot)

stamp() { python3 -c '
import sys, time
t0 = time.monotonic()
for line in sys.stdin.buffer:
    sys.stdout.write("%d %s\n" % ((time.monotonic() - t0) * 1e9, line.decode("utf-8", "replace").rstrip()))
    sys.stdout.flush()'; }
# LOG START END -> ns from the first line containing START to the next line containing END
# (lines are "<ns> <text>").
between() {
    awk -v s="$2" -v e="$3" 'index($0, s) && t0 == "" { t0 = $1; next }
        t0 != "" && index($0, e) { printf "%.0f", $1 - t0; exit }' "$1"
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "" }'; }
ms() { awk -v n="$1" 'BEGIN { if (n == "") print "-"; else if (n < 1e6) printf "%.3f", n / 1e6; else printf "%.1f", n / 1e6 }'; }

# variant -> (kernel, initrd, load-start marker, exec-start marker)
prepare() { # VARIANT PAYLOAD_FILE [-d] -> sets kern, rd, lmark, emark
    local v=$1 payload=$2 debug=${3:-} dir="$work/rd-$1"
    rm -rf "$dir"; mkdir -p "$dir"
    case $v in
    ours*)
        local flags=""
        [ "$v" = ours-copy ] && flags="--copy-all"
        [ "$v" = ours-copy-mmuoff ] && flags="--copy-all --mmu-off"
        cp "$fx/linux/Image" "$dir/Image"; ln "$payload" "$dir/payload" 2>/dev/null || cp "$payload" "$dir/payload"
        printf 'kexec -l /Image --initrd=/payload --append="%s" %s\nkexec -e\n' "$append" "$flags" > "$dir/init.rc"
        kern=$image; lmark="/init.rc: kexec -l"; emark="/init.rc: kexec -e" ;;
    linux*)
        local flags="$debug"
        [ "$v" = linux-i ] && flags="$flags -i"
        cp -a "$fx/userland/." "$dir/"; mkdir -p "$dir/dev" "$dir/proc" "$dir/sys"
        cp "$fx/linux/Image" "$dir/Image"; ln "$payload" "$dir/payload" 2>/dev/null || cp "$payload" "$dir/payload"
        cat > "$dir/init" <<INIT
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo KEXEC-L-NOW
/sbin/kexec $flags -l /Image --initrd=/payload --append="$append"
echo KEXEC-E-NOW
/sbin/kexec -e
INIT
        chmod +x "$dir/init"
        kern=$fx/linux/Image; lmark="KEXEC-L-NOW"; emark="KEXEC-E-NOW" ;;
    esac
    scripts/mkinitramfs.sh "$dir" "$work/$v.cpio" >/dev/null
    rm -rf "$dir"
    rd=$work/$v.cpio
}
boot_line="Booting Linux on physical CPU"
variants=(ours ours-copy ours-copy-mmuoff linux-i linux)
md=$work/kexec.md; dat=$work/kexec.dat
{
    echo "| payload | figure | ours (zero copy) | ours, --copy-all | ours, --copy-all --mmu-off | Linux, kexec -i | Linux, kexec | ours / Linux -i |"
    echo "|--:|--|--:|--:|--:|--:|--:|--:|"
} > "$md"
echo "# payload_MiB ours ours-copy ours-copy-mmuoff linux-i linux (kexec -e to first line, guest ms)" > "$dat"
for mib in $payloads; do
    head -c "${mib}M" /dev/urandom > "$work/payload.bin"
    declare -A ge gx gl he hl
    for v in "${variants[@]}"; do
        # Where the next kernel is entered: ours says it; kexec-tools says it with -d (one
        # extra run, not timed: the placement is the same without -d).
        if [[ $v == linux* ]]; then
            prepare "$v" "$work/payload.bin" -d
            entry=$("${q[@]}" -kernel "$kern" -initrd "$rd" -append "$append" </dev/null 2>&1 \
                | tr -d '\r' | sed -n 's/^image_arm64_load: kernel_segment: *\([0-9a-f]*\).*/0x\1/p' | head -n1)
        fi
        prepare "$v" "$work/payload.bin"
        # Host time: median of $runs runs.
        local_e=(); local_l=()
        for i in $(seq "$runs"); do
            # (No filter between QEMU and the stamps: a pipe buffer would batch the lines.)
            "${q[@]}" -kernel "$kern" -initrd "$rd" -append "$append" </dev/null 2>&1 \
                | stamp > "$work/$v-host-$i.log" || true
            local_e+=("$(between "$work/$v-host-$i.log" "$emark" "$boot_line")")
            local_l+=("$(between "$work/$v-host-$i.log" "$lmark" "$emark")")
        done
        he[$v]=$(printf '%s\n' "${local_e[@]}" | median)
        hl[$v]=$(printf '%s\n' "${local_l[@]}" | median)
        [[ $v == ours* ]] && entry=$(sed -n 's/^[0-9]* kexec: entering \(0x[0-9a-f]*\) .*/\1/p' "$work/$v-host-1.log" | head -n1)
        [ -n "$entry" ] || { echo "bench: $v: no entry address found" >&2; exit 1; }
        # Guest time: one run under icount with the stamping plugin.
        "${q[@]}" -kernel "$kern" -initrd "$rd" -append "$append" -icount shift=0,sleep=off \
            -plugin "$plugin,entry=$entry,after=$emark" -d plugin -D "$work/$v-guest.log" \
            </dev/null >/dev/null 2>&1 || true
        ge[$v]=$(between "$work/$v-guest.log" "$emark" "$boot_line")
        gx[$v]=$(between "$work/$v-guest.log" "$emark" "@entry")
        gl[$v]=$(between "$work/$v-guest.log" "$lmark" "$emark")
        rm -f "$rd"
        [ -n "${ge[$v]}" ] || { echo "bench: $v with $mib MiB never reached the next kernel; see $work/$v-guest.log" >&2; exit 1; }
    done
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
    row() { # FIGURE ARRAY
        local -n a=$2
        printf '| %s MiB | %s | %s | %s | %s | %s | %s | %s |\n' "$mib" "$1" \
            "$(ms "${a[ours]}")" "$(ms "${a[ours-copy]}")" "$(ms "${a[ours-copy-mmuoff]}")" \
            "$(ms "${a[linux-i]}")" "$(ms "${a[linux]}")" "$(ratio "${a[ours]}" "${a[linux-i]}")"
    }
    {
        row "kexec -e to first line, guest ms" ge
        row "kexec -e to the next kernel's entry, guest ms" gx
        row "kexec -e to first line, host ms (median of $runs)" he
        row "kexec -l, guest ms" gl
        row "kexec -l, host ms (median of $runs)" hl
    } >> "$md"
    printf '%s %s %s %s %s %s\n' "$mib" "$(ms "${ge[ours]}")" "$(ms "${ge[ours-copy]}")" \
        "$(ms "${ge[ours-copy-mmuoff]}")" "$(ms "${ge[linux-i]}")" "$(ms "${ge[linux]}")" >> "$dat"
    unset ge gx gl he hl
done
rm -f "$work/payload.bin"
echo
cat "$md"

gnuplot <<PLOT
set terminal pngcairo size 900,500 font "sans,10"
set output "$work/kexec.png"
set title "kexec -e to the next Linux's first console line (QEMU virt, cortex-a72, guest time under -icount)"
set ylabel "ms (log scale)"
set xlabel "initrd payload"
set logscale y
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set grid ytics
plot "$dat" using 2:xtic(sprintf("%d MiB", \$1)) title "ours (zero copy)", \
     "" using 3 title "ours, --copy-all", "" using 4 title "ours, --copy-all --mmu-off", \
     "" using 5 title "Linux 6.1, kexec -i", "" using 6 title "Linux 6.1, kexec"
PLOT
echo
echo "plot: $work/kexec.png, table: $md"

# 5. Boot: entry to `ready` in guest time (the kernel's own us= under icount), 1 and 8 GiB.
for mem in 1G 8G; do
    us=$("${q[@]/2G/$mem}" -kernel "$image" -initrd "$work/rootfs.cpio" -icount shift=0,sleep=off \
        </dev/null 2>&1 | tr -d '\r' | sed -n 's/^ready .* us=\([0-9]*\).*/\1/p')
    printf '| %-44s | %s us |\n' "boot to ready, $mem (icount)" "$us"
done
