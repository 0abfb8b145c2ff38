#!/bin/sh
# Installs a Bureau binary and its applet symlinks.
#   packaging/install.sh [BINARY] [PREFIX]     (defaults: dist/bureau, /usr/local)
# The binary is copied to PREFIX/bin/bureau (atomically: copy beside, then rename), then
# `bureau install` writes the applet symlinks, refusing to replace anything it did not install.
set -eu
binary=${1:-dist/bureau}
prefix=${2:-/usr/local}
if [ ! -x "$binary" ]; then
    echo "install.sh: $binary is not an executable; build it with 'cargo xtask dist'" >&2
    exit 1
fi
mkdir -p "$prefix/bin"
cp "$binary" "$prefix/bin/.bureau.new"
chmod 0755 "$prefix/bin/.bureau.new"
mv -f "$prefix/bin/.bureau.new" "$prefix/bin/bureau"
"$prefix/bin/bureau" install --prefix "$prefix"
"$prefix/bin/bureau" --version
