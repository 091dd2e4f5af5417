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
find_version() {
    apt-cache search --names-only "^linux-headers-[0-9][^ ]*-$arch\$" 2>/dev/null \
        | awk '{print $1}' | sed -e "s/^linux-headers-//" -e "s/-$arch\$//" \
        | grep -v -e cloud -e rt | sort -V | tail -n 1
}
packages=()
version=${SREAGENT_KERNEL_HEADERS_VERSION:-}
if [ -z "$version" ] && apt-cache show "linux-headers-$release" >/dev/null 2>&1; then
    # The distribution has headers for exactly this kernel: take them and their header deps.
    version=$release
    mapfile -t packages < <(echo "linux-headers-$release"; apt-cache depends "linux-headers-$release" 2>/dev/null \
        | awk '/Depends: linux-.*headers/ {print $2}')
fi
if [ -z "$version" ]; then
    version=$(find_version)
    if [ -z "$version" ]; then
        apt-get update -qq >/dev/null 2>&1 || true  # fresh images ship without package lists
        version=$(find_version)
    fi
fi
if [ -z "$version" ]; then
    say "no linux-headers package found in the apt lists; the collector will use bpftrace" >&2
    exit 0
fi
[ ${#packages[@]} -gt 0 ] || packages=("linux-headers-$version-$arch" "linux-headers-$version-common")

work=$(mktemp -d "${TMPDIR:-/tmp}/sreagent-headers.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "downloading ${packages[*]} (not installing them)"
if ! (cd "$work" && apt-get download -q "${packages[@]}" >/dev/null 2>"$work/apt.err"); then
    say "download failed: $(tail -n 2 "$work/apt.err" | tr '\n' ' ')" >&2
    exit 0
fi
mkdir -p "$work/x"
for deb in "$work"/*.deb; do
    dpkg -x "$deb" "$work/x"
done
# Merge every unpacked header tree into one: the shared ("common") trees first, then the
# flavour tree with the kernel's .config and generated headers on top. Top-level links
# (scripts/, tools/) point into a kbuild package that is not unpacked and BCC does not need,
# so they are dropped rather than copied dangling.
staging="$work/merged"
mkdir -p "$staging"
trees=()
for tree in "$work"/x/usr/src/*; do
    [ -d "$tree" ] && [ ! -e "$tree/.config" ] && trees+=("$tree")
done
for tree in "$work"/x/usr/src/*; do
    [ -d "$tree" ] && [ -e "$tree/.config" ] && trees+=("$tree")
done
if [ ${#trees[@]} -eq 0 ] || [ ! -e "${trees[-1]}/.config" ]; then
    say "unexpected package layout: $(ls "$work/x/usr/src" 2>/dev/null | tr '\n' ' ')" >&2
    exit 0
fi
for tree in "${trees[@]}"; do
    find "$tree" -maxdepth 1 -type l -delete
    cp -a "$tree/." "$staging/"
done
touch "$staging/$marker"
mkdir -p "$cache"
rm -rf "${cache:?}/$version"
mv "$staging" "$cache/$version"
ln -sfn "$version" "$cache/current"
link_modules "$cache/current"
say "ready: $cache/$version (kernel $release; BCC reads tracepoint arguments only)"
exit 0
