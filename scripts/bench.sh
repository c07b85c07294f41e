#!/usr/bin/env bash
# Measures kexec under QEMU (TCG) and prints a table. Not part of the test suite: timing goals
# are measured here, never asserted in tests.
#   1. relocation rate with the MMU on and off in one run (a chain alternating the two,
#      kexec.mmu=both, 64 MiB payload), next to the kernel's own memcpy rate in that run;
#   2. hop latency (kexec -e to the next kernel's `ready`) over a 100-hop chain under
#      -icount (deterministic counter): the first ten hops against the last ten;
#   3. transitional page-table pages at 1 GiB and 8 GiB.
#   4. kexec into Linux against Linux's own kexec (see below), with a table and a plot;
#   5. boot to `ready` at 1 GiB and 8 GiB;
#   6. disks: reading files from ext4 on virtio-blk, and power-on to Linux's first line through
#      an extlinux.conf, this kernel against Debian's U-Boot (see below);
#   7. verified kexec: `trust verify` of Debian's signed Images (6.1 and 6.12) against a
#      plain SHA-256 of the same bytes, guest time under -icount.
# Usage: scripts/bench.sh [--image FILE] [--linux-only | --disk-only | --verify-only]
#   BENCH_PAYLOADS="16 64 256" (MiB) and BENCH_RUNS=3 (host-time runs) set part 4's matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
image=""
only=""
while [ $# -gt 0 ]; do
    case $1 in
    --image) image=$2; shift 2 ;;
    --linux-only) only=linux; shift ;;
    --disk-only) only=disk; shift ;;
    --verify-only) only=verify; shift ;;
    *) echo "usage: scripts/bench.sh [--image FILE] [--linux-only | --disk-only | --verify-only]" >&2; exit 2 ;;
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
# 6. Disks, this kernel against Debian's U-Boot (u-boot-qemu) in the same QEMU (one vCPU,
#    2 GiB, guest time under -icount from tools/console-stamp, one run each):
#    - reading a 50 MB and a 100 MB file (random bytes) from ext4 on virtio-blk: ours is
#      `sha256 virtio0p1:/FILE` less the hashing time it prints; U-Boot's is
#      `ext4load virtio 0:1`; both from an `echo` line before to one after;
#    - from power-on to the first line of Debian's Linux (earlycon) booted through the same
#      /boot/extlinux/extlinux.conf: ours with `boot.menu boot.timeout=0` (QEMU starts the
#      kernel as a boot ROM would), U-Boot's distro boot (`bootdelay=0`).
#    Writes target/bench/disk.md.
disk_benchmarks() {
    scripts/fixtures.sh >/dev/null
    local fx=target/fixtures d=$work/disk plugin
    plugin=$(tools/console-stamp/build.sh | tail -n1)
    rm -rf "$d"; mkdir -p "$d/root/boot/extlinux" "$d/rd"
    head -c 50000000 /dev/urandom > "$d/root/file50"
    head -c 100000000 /dev/urandom > "$d/root/file100"
    cp "$fx/linux/Image" "$d/root/boot/Image"
    cp "$work/rootfs.cpio" "$d/root/boot/initrd.img"
    printf 'default l\ntimeout 0\nlabel l\n  linux /boot/Image\n  initrd /boot/initrd.img\n  append console=ttyAMA0 earlycon panic=-1\n' \
        > "$d/root/boot/extlinux/extlinux.conf"
    local mib=$(( ($(du -sm "$d/root" | cut -f1) * 5 / 4) + 16 ))
    truncate -s "${mib}M" "$d/p1.img"
    mkfs.ext4 -q -F -d "$d/root" "$d/p1.img"
    truncate -s "$((mib + 2))M" "$d/disk.img"
    echo 'label: gpt
start=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4' | sfdisk -q "$d/disk.img"
    dd if="$d/p1.img" of="$d/disk.img" bs=1M seek=1 conv=notrunc status=none
    local q=(qemu-system-aarch64 -M virt,virtualization=on -cpu cortex-a72 -m 2G -nographic
        -nic none -no-reboot -drive "file=$d/disk.img,format=raw,if=none,id=d0,snapshot=on"
        -device virtio-blk-device,drive=d0)
    local icount=(-icount shift=0,sleep=off -plugin "$plugin" -d plugin)
    # The DTB U-Boot runs on, with its boot command in /config.
    "${q[@]}" -M virt,virtualization=on,dumpdtb="$d/virt.dtb" >/dev/null 2>&1
    uboot() { # BOOTCMD QEMU-ARGS...
        cp "$d/virt.dtb" "$d/u.dtb"
        fdtput -c "$d/u.dtb" /config
        fdtput -t i "$d/u.dtb" /config bootdelay 0
        [ -z "$1" ] || fdtput -t s "$d/u.dtb" /config bootcmd "$1"
        shift
        "${q[@]}" -bios /usr/lib/u-boot/qemu_arm64/u-boot.bin -dtb "$d/u.dtb" "$@" </dev/null
    }
    printf 'echo MARK1\nsha256 virtio0p1:/file50\necho MARK2\nsha256 virtio0p1:/file100\necho MARK3\npoweroff\n' \
        > "$d/rd/init.rc"
    scripts/mkinitramfs.sh "$d/rd" "$d/rd.cpio" >/dev/null
    # Ours: the span less the hashing time the kernel printed (", N us," in its sha256 line).
    hashed() { sed -n "s/.*$2 (.* bytes, \([0-9]*\) us,.*/\1/p" "$1" | head -n1; }
    first() { awk -v e="$boot_line" 'index($0, e) { print $1; exit }' "$1"; }
    local i o50=() o100=() u50=() u100=() ob=() ub=() hob=() hub=()
    for i in $(seq "$runs"); do
        "${q[@]}" -kernel "$image" -initrd "$d/rd.cpio" "${icount[@]}" -D "$d/ours-read.log" \
            </dev/null >/dev/null 2>&1 || true
        o50+=($(( $(between "$d/ours-read.log" MARK1 MARK2) - $(hashed "$d/ours-read.log" file50) * 1000 )))
        o100+=($(( $(between "$d/ours-read.log" MARK2 MARK3) - $(hashed "$d/ours-read.log" file100) * 1000 )))
        uboot "virtio scan; echo MARK1; ext4load virtio 0:1 0x48000000 /file50; echo MARK2; ext4load virtio 0:1 0x48000000 /file100; echo MARK3; poweroff" \
            "${icount[@]}" -D "$d/uboot-read.log" >/dev/null 2>&1 || true
        u50+=("$(between "$d/uboot-read.log" MARK1 MARK2)")
        u100+=("$(between "$d/uboot-read.log" MARK2 MARK3)")
        "${q[@]}" -kernel "$image" -append "boot.menu boot.timeout=0" "${icount[@]}" \
            -D "$d/ours-boot.log" </dev/null >/dev/null 2>&1 || true
        ob+=("$(first "$d/ours-boot.log")")
        uboot "" "${icount[@]}" -D "$d/uboot-boot.log" >/dev/null 2>&1 || true
        ub+=("$(first "$d/uboot-boot.log")")
        # Host time, without icount: from QEMU's start to the line as it is printed.
        "${q[@]}" -kernel "$image" -append "boot.menu boot.timeout=0" </dev/null 2>&1 \
            | stamp > "$d/ours-host.log" || true
        hob+=("$(first "$d/ours-host.log")")
        uboot "" 2>&1 | stamp > "$d/uboot-host.log" || true
        hub+=("$(first "$d/uboot-host.log")")
    done
    local m
    for m in o50 o100 u50 u100 ob ub hob hub; do
        local -n arr=$m
        for v in "${arr[@]}"; do
            [ -n "$v" ] && [ "$v" -gt 0 ] || { echo "bench: a disk figure ($m) is missing; see $d/*.log" >&2; exit 1; }
        done
        printf -v "$m" '%s' "$(printf '%s\n' "${arr[@]}" | median)"
        unset -n arr
    done
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
    {
        echo "| median of $runs runs, $(qemu-system-aarch64 --version | head -n1) | this kernel | U-Boot | ours / U-Boot |"
        echo "|--|--:|--:|--:|"
        echo "| read 50 MB from ext4 on virtio-blk, guest ms (icount) | $(ms "$o50") | $(ms "$u50") | $(ratio "$o50" "$u50") |"
        echo "| read 100 MB from ext4 on virtio-blk, guest ms (icount) | $(ms "$o100") | $(ms "$u100") | $(ratio "$o100" "$u100") |"
        echo "| power-on to Linux's first line via extlinux.conf, guest ms (icount) | $(ms "$ob") | $(ms "$ub") | $(ratio "$ob" "$ub") |"
        echo "| the same, host ms | $(ms "$hob") | $(ms "$hub") | $(ratio "$hob" "$hub") |"
    } | tee "$work/disk.md"
}

echo "kexec benchmark: $(qemu-system-aarch64 --version | head -n1), cortex-a72, $(nproc) host CPUs"
echo
[ -n "$only" ] || chain_benchmarks

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
# 7. Verified kexec: the Authenticode check (digest, PKCS#7, RSA, chain) of Debian's signed
# Images against the Debian CA, next to a plain SHA-256 of the same bytes; both use the CPU's
# SHA-2 instructions (QEMU's cortex-a72 has them). Guest time under -icount.
verify_benchmarks() {
    local dir=$work/verify-rootfs
    rm -rf "$dir"; mkdir -p "$dir/etc/kexec/trusted"
    scripts/fixtures.sh >/dev/null
    cp target/fixtures/debian-uefi-ca.der "$dir/etc/kexec/trusted/"
    cp target/fixtures/linux/Image "$dir/linux-6.1"
    cp target/fixtures/linux-6.12/Image "$dir/linux-6.12"
    printf 'trust verify /linux-6.1 /linux-6.12\npoweroff\n' > "$dir/init.rc"
    scripts/mkinitramfs.sh "$dir" "$work/verify.cpio" >/dev/null
    rm -rf "$dir"
    timeout 600 qemu-system-aarch64 -M virt,virtualization=on -cpu cortex-a72 -m 2G -nographic \
        -nic none -no-reboot -icount shift=0,sleep=off -kernel "$image" \
        -initrd "$work/verify.cpio" </dev/null | tr -d '\r' > "$work/verify.log"
    printf '| %-44s | %s |\n' "verify vs SHA-256 (icount, sha2 instructions)" "verify / sha256 (ratio)"
    printf '| %-44s | %s |\n' "--" "--"
    grep '^trust: /linux' "$work/verify.log" | while read -r line; do
        local f=${line#trust: }; f=${f%%:*}
        local bytes=$(echo "$line" | sed -n 's/.*(\([0-9]*\) bytes.*/\1/p')
        local ok=$(echo "$line" | grep -q ': verified:' && echo verified || echo "NOT verified")
        printf '| %-44s | %s us / %s us (%s) |\n' "$f ($((bytes >> 20)) MiB, $ok)" \
            "$(echo "$line" | field verify_us)" "$(echo "$line" | field sha256_us)" \
            "$(echo "$line" | field ratio | tr -d ',')"
    done
}
boot_line="Booting Linux on physical CPU"
if [ "$only" = verify ]; then
    verify_benchmarks
    exit 0
fi
if [ "$only" = disk ]; then
    disk_benchmarks
    exit 0
fi
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

[ "$only" = linux ] || { echo; disk_benchmarks; echo; verify_benchmarks; }
