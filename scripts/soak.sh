#!/usr/bin/env bash
# A long kexec chain, checked hop by hop (not in CI: it takes minutes).
#   scripts/soak.sh [HOPS] [PAYLOAD]        default: 1000 hops with a 64M payload
# The kernel checks each hop itself (payload hash, free frames against hop 1's, the EL it
# started at, every CPU back: `chain: FAIL` otherwise); this script checks every `chain:`
# line again against the Image file's SHA-256 and the last generation's history (every
# generation, in order), and reports the hop latency (`kexec -e` to the
# next kernel's `ready`, in guest time under -icount, so the figures are reproducible) over
# the first, middle and last ten hops.
set -euo pipefail
cd "$(dirname "$0")/.."
hops=${1:-1000}
payload=${2:-64M}
image=$(scripts/build.sh | tail -n1)
want=$(sha256sum "$image" | cut -d' ' -f1)
work=target/soak
mkdir -p "$work"
mkdir -p "$work/rootfs"
printf 'poweroff\n' > "$work/rootfs/init.rc"
scripts/mkinitramfs.sh "$work/rootfs" "$work/rootfs.cpio" >/dev/null
log=$work/chain.log
start=$(date +%s)
qemu-system-aarch64 -M virt,virtualization=on -cpu cortex-a72 -m 1G -nographic -nic none \
    -no-reboot -icount shift=0,sleep=off -kernel "$image" -initrd "$work/rootfs.cpio" \
    -append "semihosting kexec.chain=$hops kexec.payload=$payload" \
    -semihosting-config enable=on,target=native </dev/null >"$log" 2>&1 || true
wall=$(( $(date +%s) - start ))
tr -d '\r' <"$log" | awk -v hops="$hops" -v want="$want" -v wall="$wall" -v payload="$payload" '
    /^chain: hop=/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        split(f["hop"], h, "/"); n = h[1] + 0
        if (n != seen) { printf "soak: FAIL hop %d came after hop %d\n", n, seen - 1; bad = 1 }
        seen = n + 1
        if (f["image"] != want) { printf "soak: FAIL hop %d image %s, the file is %s\n", n, f["image"], want; bad = 1 }
        if (n == 0) { el = f["el"]; next }
        if (f["payload"] != "ok") { printf "soak: FAIL hop %d payload %s\n", n, f["payload"]; bad = 1 }
        if (f["el"] != el) { printf "soak: FAIL hop %d at EL%s, the chain started at EL%s\n", n, f["el"], el; bad = 1 }
        if (n == 1) free = f["free"]
        if (f["free"] != free) { printf "soak: FAIL hop %d free=%s, hop 1 had %s\n", n, f["free"], free; bad = 1 }
        lat[n] = f["hop_us"]
    }
    /^chain: history hop=/ {
        # The last generation prints the history it was handed: every hop, in order.
        split($3, kv, "="); if (kv[2] + 0 != nhist) { printf "soak: FAIL history entry %d is hop %s\n", nhist, kv[2]; bad = 1 }
        nhist++
    }
    /^chain: (PASS|FAIL)/ { verdict = $0 }
    function mean(from, to,   s, k, c) { for (k = from; k <= to; k++) if (k in lat) { s += lat[k]; c++ } return c ? s / c : 0 }
    END {
        if (seen != hops + 1) { printf "soak: FAIL %d of %d hops reported\n", seen - 1, hops; bad = 1 }
        if (nhist != hops + 1) { printf "soak: FAIL the history holds %d of %d generations\n", nhist, hops + 1; bad = 1 }
        if (verdict != "chain: PASS") { printf "soak: FAIL the kernel said: %s\n", verdict; bad = 1 }
        mid = int(hops / 2)
        printf "soak: %d hops x %s, %d s wall; free=%s at every hop; hop latency (us, -icount): hops 1-10 %.0f, %d-%d %.0f, %d-%d %.0f\n",
            seen - 1, payload, wall, free, mean(1, 10), mid - 4, mid + 5, mean(mid - 4, mid + 5), hops - 9, hops, mean(hops - 9, hops)
        exit bad
    }'
