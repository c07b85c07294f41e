#!/usr/bin/env bash
# Signs the kernel's Image for UEFI Secure Boot and verified kexec (Authenticode, with
# Debian's sbsigntool). The signed Image's path is the LAST line printed.
#   scripts/sign.sh KEY CERT [IMAGE [OUT]]
#     KEY    the signing key, PEM; an encrypted one needs SIGN_KEY_PASS=PASSWORD
#     CERT   its certificate, PEM (add intermediates with SIGN_ADDCERT=PEM)
#     IMAGE  default: the release Image scripts/build.sh writes
#     OUT    default: IMAGE with .signed.Image for .Image
# The result stays an arm64 Image (sbsign appends the signature after the file and fills in
# the PE checksum and security directory, nothing else): boot loaders and kexec take it as
# they took the unsigned one. sbverify checks it before this says it is done.
set -euo pipefail
[ $# -ge 2 ] && [ $# -le 4 ] || { sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
key=$1 cert=$2
image=${3:-$(cd "$(dirname "$0")/.." && pwd)/target/aarch64-unknown-none/release/kernel.Image}
out=${4:-${image%.Image}.signed.Image}
for tool in sbsign sbverify openssl; do
    command -v "$tool" >/dev/null || { echo "sign.sh: $tool missing: scripts/setup.sh installs it (sbsigntool, openssl)" >&2; exit 1; }
done
[ -f "$image" ] || { echo "sign.sh: $image: no such Image (scripts/build.sh first)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# sbsign takes only an unencrypted key: unlock it into a private scratch file.
if [ -n "${SIGN_KEY_PASS:-}" ]; then
    (umask 077 && openssl pkey -in "$key" -passin env:SIGN_KEY_PASS -out "$tmp/key.pem")
    key=$tmp/key.pem
fi
add=()
[ -z "${SIGN_ADDCERT:-}" ] || add=(--addcert "$SIGN_ADDCERT")
# An Image already signed is signed again from scratch (sbsign would add a second signature).
sbsign --key "$key" --cert "$cert" "${add[@]}" --output "$tmp/signed" "$image" >&2
sbverify --cert "$cert" "$tmp/signed" >/dev/null 2>&1 \
    || { echo "sign.sh: sbverify does not accept the signed Image" >&2; exit 1; }
# Still an arm64 Image: the header's magic "ARM\x64" at 0x38.
[ "$(dd if="$tmp/signed" bs=1 skip=56 count=4 status=none)" = "$(printf 'ARM\x64')" ] \
    || { echo "sign.sh: the signed file lost the arm64 Image magic" >&2; exit 1; }
mv "$tmp/signed" "$out"
echo "sign.sh: $(stat -c %s "$out") bytes, signed by $(openssl x509 -in "$cert" -noout -subject)" >&2
realpath "$out"
