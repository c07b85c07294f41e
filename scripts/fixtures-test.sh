#!/usr/bin/env bash
# Shows that scripts/fixtures.sh never leaves a half-made fixture that a later run takes for
# finished: in a scratch fixtures directory it kills a run in the middle of writing a DTB, and
# in the middle of unpacking a package, makes a run fail, and checks each time that the final
# name does not exist and that the next run makes the fixture whole.
# Reuses the packages already unpacked in target/fixtures (run scripts/fixtures.sh first);
# downloads Debian's busybox/kexec-tools packages once more (a few MB) for the third case.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { printf 'fixtures-test: FAIL: %s\n' "$*" >&2; exit 1; }
say() { printf 'fixtures-test: %s\n' "$*"; }
[ -f target/fixtures/linux/version ] && [ -x target/fixtures/userland/sbin/kexec ] \
    && [ -f target/fixtures/firmware/packages ] && [ -f target/fixtures/linux-6.12/version ] \
    || fail "target/fixtures is incomplete: run scripts/fixtures.sh first"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
dir=$scratch/fixtures
fakes=$scratch/bin
mkdir -p "$dir" "$fakes"
# The unpacked packages, shared (hard links) so that they are not fetched again.
cp -al target/fixtures/linux "$dir/linux"
cp -al target/fixtures/linux-6.12 "$dir/linux-6.12"
cp -al target/fixtures/userland "$dir/userland"
cp -al target/fixtures/firmware "$dir/firmware"
touch "$dir/.atomic"

run() { FIXTURES_DIR=$dir PATH="$fakes:$PATH" scripts/fixtures.sh >"$scratch/log" 2>&1; }
# fake TOOL SCRIPT: puts a TOOL in front of the real one for the next runs.
fake() { printf '#!/usr/bin/env bash\n%s\n' "$2" >"$fakes/$1"; chmod +x "$fakes/$1"; }
unfake() { rm -f "$fakes"/*; }
# The file fdtput is editing (the first .partial argument).
partial_arg='for a; do case $a in *.partial) f=$a; break;; esac; done'

expect_whole() {
    run || { cat "$scratch/log"; fail "the run after an interrupted one failed"; }
    [ -z "$(ls -A "$dir" | grep '\.partial$' || true)" ] || fail "a .partial file is left: $(ls -A "$dir")"
    local reg
    reg=$(fdtget -t x "$dir/rpi4-4g.dtb" /memory@0 reg) || fail "rpi4-4g.dtb is not a valid DTB"
    [ "$reg" = "0 0 3b400000 0 40000000 bc000000" ] || fail "rpi4-4g.dtb /memory@0 reg = '$reg'"
    for d in rpi4-qemu virt-1g virt-runtime bcm2711-rpi-4-b juno-r2; do
        fdtget "$dir/$d.dtb" / compatible >/dev/null || fail "$d.dtb is not a valid DTB"
    done
    [ -x "$dir/userland/sbin/kexec" ] && [ -x "$dir/userland/bin/busybox" ] \
        || fail "userland is incomplete"
    [ -f "$dir/firmware/bl31-qemu.bin" ] && [ -f "$dir/firmware/u-boot.bin" ] \
        || fail "firmware is incomplete"
}

# 1. A run killed while fdtput writes rpi4-4g.dtb (the run that went wrong in issue #9).
fake fdtput "$partial_arg"'; head -c 100 /dev/zero >"$f"; kill -KILL $PPID'
! run || fail "the run with a killing fdtput succeeded"
[ ! -e "$dir/rpi4-4g.dtb" ] || fail "a killed run left rpi4-4g.dtb"
[ -e "$dir/.rpi4-4g.dtb.partial" ] || fail "the killed run did not get as far as rpi4-4g.dtb"
unfake
expect_whole
say "ok: a run killed while editing rpi4-4g.dtb is repaired by the next"

# 2. A run whose fdtput fails: nothing under the final name, nothing temporary left.
rm -f "$dir/rpi4-4g.dtb" "$dir/rpi4-qemu.dtb"
fake fdtput "$partial_arg"'; echo garbage >"$f"; exit 1'
! run || fail "the run with a failing fdtput succeeded"
[ ! -e "$dir/rpi4-4g.dtb" ] || fail "a failed run left rpi4-4g.dtb"
[ -z "$(ls -A "$dir" | grep '\.partial$' || true)" ] || fail "a failed run left $(ls -A "$dir")"
unfake
expect_whole
say "ok: a failed run leaves nothing behind"

# 3. A run killed while unpacking the userland packages.
rm -rf "$dir/userland"
real=$(command -v dpkg-deb)
fake dpkg-deb "\"$real\" \"\$@\"; kill -KILL \$PPID"
! run || fail "the run with a killing dpkg-deb succeeded"
[ ! -e "$dir/userland" ] || fail "a killed run left userland/"
[ -d "$dir/.userland.partial" ] || fail "the killed run did not get as far as userland/"
unfake
expect_whole
say "ok: a run killed while unpacking userland/ is repaired by the next"
