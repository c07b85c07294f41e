#!/usr/bin/env bash
# Builds the cache-model QEMU plugin; prints the path of the .so as its LAST line.
# Needs gcc, pkg-config and glib's headers (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
src=tools/cache-model
out=target/cache-model
mkdir -p "$out"
so=$out/cache-model.so
if [ ! -f "$so" ] || [ -n "$(find "$src" -newer "$so" -name '*.[ch]')" ]; then
    # shellcheck disable=SC2046
    gcc -shared -fPIC -O2 -Wall -Wextra -Werror -Wno-unused-parameter -fvisibility=hidden \
        -I"$src" $(pkg-config --cflags glib-2.0) -o "$so.tmp" "$src/cache-model.c" \
        $(pkg-config --libs glib-2.0)
    mv "$so.tmp" "$so"
fi
realpath "$so"
