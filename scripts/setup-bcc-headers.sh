#!/usr/bin/env bash
# Give BCC (the collector's primary eBPF backend) kernel headers on a kernel that has none.
#
# BCC compiles its programs against kernel headers. This machine's kernel ships none, and
# `apt-get install linux-headers-...` would drag in a kernel image and systemd, so instead:
# download (never install) Debian's header packages, unpack them with `dpkg -x` into one merged
# tree under /var/cache/sreagent/kernel-headers/<version>, and point
# /lib/modules/$(uname -r)/{build,source} at it (only where nothing else is there). The
# collector also sets BCC_KERNEL_SOURCE to .../kernel-headers/current itself, so the symlinks
# are a convenience for other BCC tools.
#
# The headers are usually OLDER than the running kernel, so struct layouts may differ: the
# collector's BCC programs read tracepoint arguments only (BCC builds those from tracefs format
# files of the running kernel), never kernel structs. See docs/collector.md.
#
# Idempotent and quick when done: a marker file ends the script at once. Never fails the
# install: without headers the collector falls back to bpftrace and says so.
#   SREAGENT_KERNEL_HEADERS_VERSION=6.12.117+deb12  pick a header version (default: newest)
#   SREAGENT_KERNEL_HEADERS_CACHE=DIR               cache folder (default below)
set -uo pipefail

cache=${SREAGENT_KERNEL_HEADERS_CACHE:-/var/cache/sreagent/kernel-headers}
release=$(uname -r)
modules=/lib/modules/$release
marker=.sreagent-complete

say() { echo "bcc headers: $*"; }

link_modules() {
    # Point /lib/modules/<release>/{build,source} at the cache unless real headers are there.
    local target=$1 name
    mkdir -p "$modules" 2>/dev/null || return 0
    for name in build source; do
        if [ -L "$modules/$name" ] || [ ! -e "$modules/$name" ]; then
            ln -sfn "$target" "$modules/$name"
        fi
    done
}

if [ -e "$modules/build/include/linux/kconfig.h" ] && [ ! -L "$modules/build" ]; then
    say "real headers for $release are installed; nothing to do"
    exit 0
fi
if [ -e "$cache/current/$marker" ]; then
    link_modules "$cache/current" 2>/dev/null
    say "present: $(readlink "$cache/current") (for kernel $release)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    say "not set up (needs root on Debian: 'sudo bash scripts/setup-bcc-headers.sh'); the collector will use bpftrace" >&2
    exit 0
fi

arch=$(dpkg --print-architecture)
version=${SREAGENT_KERNEL_HEADERS_VERSION:-}
if [ -z "$version" ]; then
    # The exact release if Debian has it, else the newest flavour-less header package.
    if apt-cache show "linux-headers-$release" >/dev/null 2>&1; then
        version=${release%-"$arch"}
    else
        version=$(apt-cache search --names-only "^linux-headers-[0-9][^ ]*-$arch\$" 2>/dev/null \
            | awk '{print $1}' | sed -e "s/^linux-headers-//" -e "s/-$arch\$//" \
            | grep -v -e cloud -e rt | sort -V | tail -n 1)
    fi
fi
if [ -z "$version" ]; then
    say "no linux-headers package found in the apt lists (run apt-get update?); the collector will use bpftrace" >&2
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sreagent-headers.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "downloading linux-headers-$version-$arch and -common (not installing them)"
if ! (cd "$work" && apt-get download -q "linux-headers-$version-$arch" "linux-headers-$version-common" >/dev/null 2>"$work/apt.err"); then
    say "download failed: $(tail -n 2 "$work/apt.err" | tr '\n' ' ')" >&2
    exit 0
fi
mkdir -p "$work/x"
for deb in "$work"/*.deb; do
    dpkg -x "$deb" "$work/x"
done
common="$work/x/usr/src/linux-headers-$version-common"
flavour="$work/x/usr/src/linux-headers-$version-$arch"
if [ ! -d "$common" ] || [ ! -d "$flavour" ]; then
    say "unexpected package layout: $(ls "$work/x/usr/src" | tr '\n' ' ')" >&2
    exit 0
fi
# The flavour tree links scripts/ and tools/ to the (absent) kbuild package; BCC needs neither,
# and a symlink cannot replace the common tree's directories of the same name.
find "$flavour" -maxdepth 1 -type l -delete
staging="$work/merged"
mkdir -p "$staging"
cp -a "$common/." "$staging/"
cp -a "$flavour/." "$staging/"
touch "$staging/$marker"
mkdir -p "$cache"
rm -rf "${cache:?}/$version"
mv "$staging" "$cache/$version"
ln -sfn "$version" "$cache/current"
link_modules "$cache/current"
say "ready: $cache/$version (kernel $release; BCC reads tracepoint arguments only)"
exit 0
