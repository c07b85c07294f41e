#!/usr/bin/env bash
# Builds the console-stamp QEMU plugin; prints the path of the .so as its LAST line.
# Needs gcc, pkg-config and glib's headers (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
src=tools/console-stamp
out=target/console-stamp
mkdir -p "$out"
so=$out/console-stamp.so
if [ ! -f "$so" ] || [ -n "$(find "$src" tools/cache-model/qemu-plugin-api.h -newer "$so" -name '*.[ch]')" ]; then
    # shellcheck disable=SC2046
    gcc -shared -fPIC -O2 -Wall -Wextra -Werror -Wno-unused-parameter -fvisibility=hidden \
        $(pkg-config --cflags glib-2.0) -o "$so.tmp" "$src/console-stamp.c" \
        $(pkg-config --libs glib-2.0)
    mv "$so.tmp" "$so"
fi
realpath "$so"
