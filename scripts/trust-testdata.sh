#!/usr/bin/env bash
# Writes the unit tests' signed PE files and certificates (kernel/src/trust/testdata/):
# a throw-away CA "Hobby Test Root", an intermediate, a signer, an unrelated certificate, a
# chain longer than the verifier's bound, a signer under a certificate that is no CA, and a
# small PE32+ file signed with sbsign.
# The keys live only in a temporary directory. Needs openssl, sbsign (sbsigntool), python3.
# Run it again only to change the test data; the unit tests read what it wrote.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/kernel/src/trust/testdata"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# A CA certificate NAME signed by ISSUER (or self-signed when ISSUER is empty).
cert() {
    local name=$1 cn=$2 issuer=${3:-} ca=${4:-CA:TRUE}
    openssl req -new -newkey rsa:2048 -nodes -keyout "$name.key" -subj "/CN=$cn" \
        -out "$name.csr" 2>/dev/null
    printf 'basicConstraints=critical,%s\nkeyUsage=critical,digitalSignature,keyCertSign\n' \
        "$ca" > "$name.ext"
    if [ -z "$issuer" ]; then
        openssl x509 -req -in "$name.csr" -signkey "$name.key" -days 36500 -sha256 \
            -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    else
        openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" \
            -set_serial "0x$(openssl rand -hex 8)" -days 36500 -sha256 \
            -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    fi
}

cert root "Hobby Test Root"
cert int "Hobby Test Intermediate" root
cert signer "Hobby Test Signer" int CA:FALSE
cert other "Hobby Test Other"
# root -> d1 -> ... -> d10 -> deep signer: ten certificates between signer and root.
prev=root
for i in $(seq 1 10); do cert "d$i" "Hobby Test Deep $i" "$prev"; prev="d$i"; done
cert deep "Hobby Test Deep Signer" "$prev" CA:FALSE
# A certificate issued by the signer, which is no CA: the chain must not go through it.
cert sub "Hobby Test Sub Signer" signer CA:FALSE

# A PE32+ EFI application for arm64 with two 512-byte sections (never run, only signed).
python3 - tiny.efi <<'PY'
import struct, sys
headers, align = 0x200, 0x200
dos = b"MZ" + bytes(0x3a) + struct.pack("<I", 0x40)
coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0xaa64, 2, 0, 0, 0, 240, 0x0206)
opt = struct.pack("<HBBIIIII", 0x20b, 0, 0, 0x200, 0x200, 0, 0x1000, 0x1000)
opt += struct.pack("<QIIHHHHHHIIIIHHQQQQII", 0, 0x1000, align, 0, 0, 0, 0, 0, 0, 0,
                   0x3000, headers, 0, 10, 0, 0, 0, 0, 0, 0, 16)
opt += bytes(16 * 8)
sec = b""
for i, name in enumerate([b".text", b".data"]):
    sec += struct.pack("<8sIIIIIIHHI", name, 0x200, 0x1000 * (i + 1), 0x200,
                       headers + 0x200 * i, 0, 0, 0, 0, 0x60000020 if i == 0 else 0xc0000040)
head = dos + coff + opt + sec
body = bytes((i * 7 + 3) & 0xff for i in range(0x200)) + b"hobby test data".ljust(0x200, b".")
open(sys.argv[1], "wb").write(head.ljust(headers, b"\0") + body)
PY

sbsign --key signer.key --cert signer.pem --addcert int.pem --output tiny.signed.efi tiny.efi
sbsign --key other.key --cert other.pem --output tiny.other.efi tiny.efi
cat d*.pem > deep-chain.pem
cat signer.pem int.pem > sub-chain.pem
sbsign --key sub.key --cert sub.pem --addcert sub-chain.pem --output tiny.sub.efi tiny.efi
sbsign --key deep.key --cert deep.pem --addcert deep-chain.pem --output tiny.deep.efi tiny.efi

mkdir -p "$out"
cp tiny.efi tiny.signed.efi tiny.other.efi tiny.deep.efi tiny.sub.efi "$out/"
openssl x509 -in root.pem -outform der -out "$out/root.der"
openssl x509 -in other.pem -outform der -out "$out/other.der"
# PEM with openssl's text before it, as users paste certificates.
openssl x509 -in int.pem -text > "$out/int.pem"
openssl x509 -in signer.pem -outform der -out "$out/signer.der"
ls -l "$out"
