#!/usr/bin/env bash
# Installs what building and booting the test kernel needs on a Debian host.
# --check-only: report what is missing and exit 0 (the project's tests skip
# the QEMU parts with that reason instead of failing).
set -euo pipefail

packages=(qemu-system-x86 linux-source-6.1 gcc make flex bison bc libelf-dev libssl-dev
          cpio xz-utils kmod)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "${1:-}" = "--check-only" ]; then
    echo "setup-host: not installed: ${missing[*]} (QEMU tests will say so)" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    echo "setup-host: need root (or sudo) to apt-get install: ${missing[*]}" >&2
    exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
if ! command -v apt-get >/dev/null; then
    echo "setup-host: no apt-get here; install the equivalents of: ${missing[*]}" >&2
    exit 1
fi
echo "setup-host: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || { echo "setup-host: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
