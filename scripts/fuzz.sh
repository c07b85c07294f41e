#!/usr/bin/env bash
# Fuzzes every parser and editor the kernel runs on input it did not make (fuzz/: the
# kernel's own code, built for the host) with libFuzzer, coverage-guided, under
# AddressSanitizer (cargo-fuzz, fuzz/libfuzzer/), each target for SECONDS (default 60), from
# seed corpora made of real files: Debian's and this kernel's Images, the fixtures' DTBs (QEMU
# virt, Raspberry Pi 4, Juno r2), initramfs images, gzip files; plus the targets' built-in
# seeds.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Installs what it needs, once: a nightly toolchain (minimal profile; FUZZ_TOOLCHAIN names
# another) and cargo-fuzz. Corpora grow from run to run in target/fuzz-corpus/<target>
# (never committed); each run's log is target/fuzz-logs/<target>.log.
# Prints one line per target: inputs run, libFuzzer's coverage (cov: edges, ft: features),
# corpus size. A crash (a panic, an AddressSanitizer report), an input running over 10 s, a
# single allocation over 32 MiB or the process over 2 GiB fails the run and leaves the input
# in target/fuzz-crashes/; every one found becomes a regression test
# (fuzz/regressions/<target>-<what>.bin, replayed by `cargo test -p fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
all=(image gzip cpio dtb uefi efi cmdline chain gicv3 elfcore partition fat ext4 bootentry authenticode pkcs7)
targets=("${@:-${all[@]}}")
for t in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz: no target $t (targets: ${all[*]})" >&2; exit 2; }
done
toolchain=${FUZZ_TOOLCHAIN:-nightly}

# The tools, each only when missing: `rustup toolchain install` on a toolchain already there
# looks for a newer one (a download every day for nightly). --no-self-update: installing a
# toolchain is no reason to replace rustup itself.
if ! rustup toolchain list | grep -q "^$toolchain\(-\| \|$\)"; then
    echo "fuzz: installing the $toolchain toolchain (minimal profile)"
    rustup toolchain install "$toolchain" --profile minimal --no-self-update
fi
if ! command -v c++ >/dev/null; then
    echo "fuzz: libFuzzer is C++: install g++ (scripts/setup.sh does)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

scripts/fixtures.sh >/dev/null
fx=target/fixtures
# Seeds in a directory of this run's own: runs over different targets may go at once.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
seeds=$tmp/seeds
cargo run -q -p fuzz --bin seeds -- "$seeds"
image=$(scripts/build.sh | tail -n1)
# Images: the header and the PE header are all that is read; 64 KiB of each.
head -c 65536 "$fx/linux/Image" > "$seeds/image/debian-linux"
head -c 65536 "$image" > "$seeds/image/this-kernel"
# gzip: 64 KiB of Linux's code (the Image's first 64 KiB are mostly zeros and compress to
# nothing; more only slows every input down) and a gzip initramfs.
head -c 131072 "$fx/linux/Image" | tail -c 65536 | gzip -9 > "$seeds/gzip/linux-code.gz"
mkdir -p "$tmp/rd/bin" "$tmp/rd/etc"
printf 'echo hello\nls /\n' > "$tmp/rd/init.rc"
head -c 5000 "$fx/userland/bin/busybox" > "$tmp/rd/bin/busybox"
printf 'x\n' > "$tmp/rd/etc/motd"
scripts/mkinitramfs.sh "$tmp/rd" "$seeds/cpio/small.cpio" >/dev/null
gzip -9c "$seeds/cpio/small.cpio" > "$seeds/gzip/small.cpio.gz"
# DTBs: QEMU's and the boards'.
cp "$fx"/*.dtb "$seeds/dtb/"
# Disks and volumes as the real tools make them: FAT12 and FAT32 by mkfs.fat with files by
# mcopy, ext4 and ext2 by mkfs.ext4 -d, an MBR and a GPT by sfdisk.
mkdir -p "$tmp/vol/boot/extlinux" "$seeds/fat" "$seeds/ext4" "$seeds/partition"
printf 'label l0\n linux /boot/vmlinuz\n' > "$tmp/vol/boot/extlinux/extlinux.conf"
head -c 3000 "$fx/linux/Image" > "$tmp/vol/boot/vmlinuz"
for bits in 12 32; do
    f=$seeds/fat/fat$bits.img
    # FAT32 needs 65525 clusters or more: 36 MiB of 512-byte ones.
    if [ "$bits" = 12 ]; then size=256K; spc=4; else size=36M; spc=1; fi
    truncate -s "$size" "$f" && mkfs.fat -F "$bits" -s "$spc" "$f" >/dev/null
    mmd -i "$f" ::boot && mcopy -i "$f" "$tmp/vol/boot/vmlinuz" "::boot/a long name" && mcopy -i "$f" "$tmp/vol/boot/extlinux/extlinux.conf" ::extlinux.conf
done
# As a seed, only FAT32's first 256 KiB (the boot sector, the start of the FATs): inputs of
# 36 MiB would make every run slow.
truncate -s 256K "$seeds/fat/fat32.img"
for t in ext4 ext2; do
    f=$seeds/ext4/$t.img
    truncate -s 256K "$f"
    mkfs.ext4 -q -F -t "$t" -O ^has_journal -b 1024 -N 32 -d "$tmp/vol" "$f"
done
for label in dos gpt; do
    f=$seeds/partition/$label.img
    truncate -s 128K "$f"
    printf 'label: %s\nstart=34, size=40\nstart=80, size=40\n' "$label" | sfdisk -q "$f"
done
# Command lines the tests and the README use.
printf '%s' 'console=ttyAMA0 earlycon panic=-1 kexec.chain=20 kexec.payload=64M kexec.mmu=both' > "$seeds/cmdline/chain"
printf '%s' 'kexec -l /Image --initrd=/rootfs.cpio.gz --append="console=ttyAMA0 panic=-1"' > "$seeds/cmdline/kexec"

# Every target, built once (release, debug assertions and overflow checks, AddressSanitizer).
host=$(rustc -vV | sed -n 's/^host: //p')
logs=target/fuzz-logs
mkdir -p "$logs"
if ! cargo "+$toolchain" fuzz build -O --fuzz-dir fuzz/libfuzzer --target-dir target/libfuzzer \
        --target "$host" > "$logs/build.log" 2>&1; then
    tail -n 40 "$logs/build.log"
    echo "fuzz: FAIL the build (log: $logs/build.log)"
    exit 1
fi
bin=target/libfuzzer/$host/release

crashes=target/fuzz-crashes
mkdir -p "$crashes"
failed=0
for t in "${targets[@]}"; do
    mkdir -p "target/fuzz-corpus/$t"
    log=$logs/$t.log
    # New inputs go to the first directory (the corpus); the seeds are read only.
    # -malloc_limit_mb: no target allocates more than a few MiB at once for an input of at
    # most 1 MiB (the largest seed, QEMU's DTB, sets libFuzzer's length limit), while a size
    # or count taken from a header unchecked asks for far more.
    # -rss_limit_mb: everything at once, AddressSanitizer's quarantine included.
    rc=0
    "$bin/$t" "target/fuzz-corpus/$t" "$seeds/$t" -max_total_time="$secs" -timeout=10 \
        -malloc_limit_mb=32 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$crashes/$t-" > "$log" 2>&1 || rc=$?
    inputs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n1 || true)
    corpus=$(find "target/fuzz-corpus/$t" -type f | wc -l)
    if [[ $rc == 0 ]]; then
        printf 'fuzz: %-8s inputs=%-9s %-22s corpus=%-5s seconds=%s ok\n' \
            "$t" "${inputs:-?}" "$cov" "$corpus" "$secs"
    else
        failed=1
        # The panic and its message (the line after), or libFuzzer's verdict; the input's name.
        { grep -A1 'panicked at' "$log" | head -n 2
          grep -E '^SUMMARY|ERROR: libFuzzer: (timeout|out-of-memory)|Test unit written' "$log"
        } || true
        echo "fuzz: FAIL $t (exit $rc; input in $crashes/, log $log; keep it as" \
            "fuzz/regressions/$t-<what>.bin once fixed)"
    fi
done
exit $failed
