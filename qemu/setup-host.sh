#!/usr/bin/env bash
# Installs what building and booting the test kernel needs on a Debian host.
#   --check-only         report what is missing and exit 0 (the project's tests
#                        then skip those parts, saying why)
#   --with-report-tools  also Node.js, npm, Chromium and the Allure 3 report
#                        generator (npm package `allure`) for the HTML report
#   --with-matrix        also linux-source-5.10 (the last kernel with staging ION),
#                        for `tox -e matrix`; see install_linux_source_5_10 below
#   --with-arm64         also the arm64 guest's tools, for `tox -e qemu-arm64`: the
#                        cross compiler, qemu-system-aarch64, and mmdebstrap, which
#                        makes the guest's Debian root (conformance/qemu/rootfs.py)
#   --with-lava          also LAVA's dispatcher (lava-run) and busybox-static, unpacked
#                        into ~/.cache/dmabuf-conformance/lava by lava/setup-lava.sh,
#                        for `tox -e lava`
set -euo pipefail

check_only=0
report_tools=0
matrix=0
arm64=0
lava=0
for arg in "$@"; do
    case "$arg" in
        --check-only) check_only=1 ;;
        --with-report-tools) report_tools=1 ;;
        --with-matrix) matrix=1 ;;
        --with-arm64) arm64=1 ;;
        --with-lava) lava=1 ;;
        *) echo "setup-host: unknown option $arg" >&2; exit 2 ;;
    esac
done

# linux-source-6.12: a second tree the probe module is built against (tests/test_probe_build.py)
packages=(qemu-system-x86 linux-source-6.1 linux-source-6.12 gcc make flex bison bc libelf-dev
          libssl-dev cpio xz-utils lz4 kmod linux-libc-dev libdrm-dev)
# lz4: the x86_64 bzImage is LZ4-compressed (qemu/config/x86_64-boot.config says why)
packages+=(dropbear-bin openssh-client)  # the ssh board stand-in (conformance/qemu/ssh_standin.py)
if [ $arm64 -eq 1 ]; then
    packages+=(gcc-aarch64-linux-gnu qemu-system-arm mmdebstrap)
fi
if [ $report_tools -eq 1 ]; then
    packages+=(chromium)
    # A machine may carry its own Node.js (whose npm the Debian package conflicts with).
    command -v npm >/dev/null || packages+=(nodejs npm)
fi

if [ $lava -eq 1 ]; then
    # Not through apt-get install: lava/setup-lava.sh says why; it is idempotent.
    lava_args=()
    [ $check_only -eq 1 ] && lava_args+=(--check-only)
    bash "$(dirname "${BASH_SOURCE[0]}")/../lava/setup-lava.sh" "${lava_args[@]}"
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
need_allure=0
if [ $report_tools -eq 1 ] && ! { command -v allure >/dev/null && allure --version 2>/dev/null | grep -q '^3\.'; }; then
    need_allure=1
fi
need_5_10=0
if [ $matrix -eq 1 ] && ! installed linux-source-5.10; then
    need_5_10=1
fi
[ ${#missing[@]} -eq 0 ] && [ $need_allure -eq 0 ] && [ $need_5_10 -eq 0 ] && exit 0

if [ $check_only -eq 1 ]; then
    [ ${#missing[@]} -gt 0 ] && echo "setup-host: not installed: ${missing[*]} (the tests that need them will say so)" >&2
    [ $need_5_10 -eq 1 ] && echo "setup-host: not installed: linux-source-5.10 (--with-matrix installs it)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup-host: need root (or sudo) to install: ${missing[*]} ${need_allure:+allure}" >&2; exit 1; }
    SUDO=sudo
fi
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || { echo "setup-host: no apt-get here; install the equivalents of: ${missing[*]}" >&2; exit 1; }
    echo "setup-host: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || { echo "setup-host: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
fi
if [ $report_tools -eq 1 ] && ! { command -v allure >/dev/null && allure --version 2>/dev/null | grep -q '^3\.'; }; then
    echo "setup-host: installing the Allure 3 report generator (npm install -g allure)" >&2
    $SUDO npm install -g --no-fund --no-audit allure@3 >/dev/null \
        || { echo "setup-host: npm install -g allure@3 failed" >&2; exit 1; }
fi

# linux-source-5.10 (5.10.223) is a Debian 11 (bullseye) package; this host's
# apt sources (bookworm) do not list it.  Fetch it from the same Debian mirror
# through a source list that apt reads for this one download only: the
# system's sources stay as they are, and nothing else comes from bullseye.
install_linux_source_5_10() {
    local mirror tmp
    # The mirror apt already uses: the first non-security URI of the deb822 or
    # one-line sources; deb.debian.org if there is none.
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    tmp=$(mktemp -d /tmp/dmabuf-conformance-bullseye.XXXXXX)
    chmod 755 "$tmp"  # apt's _apt user writes the download here
    mkdir -p "$tmp/lists/partial"
    echo "deb $mirror bullseye main" > "$tmp/sources.list"
    local apt_opts=(-o "Dir::Etc::sourcelist=$tmp/sources.list" -o "Dir::Etc::sourceparts=/dev/null"
                    -o "Dir::State::Lists=$tmp/lists" -o "APT::Sandbox::User=root")
    echo "setup-host: downloading linux-source-5.10 from $mirror bullseye (122 MB)" >&2
    $SUDO apt-get "${apt_opts[@]}" update -qq \
        || { echo "setup-host: apt-get update of $mirror bullseye failed" >&2; exit 1; }
    (cd "$tmp" && $SUDO apt-get "${apt_opts[@]}" download linux-source-5.10) \
        || { echo "setup-host: downloading linux-source-5.10 from $mirror bullseye failed" >&2; exit 1; }
    # Its dependencies (binutils, xz-utils) come with the build dependencies above.
    $SUDO dpkg -i "$tmp"/linux-source-5.10_*_all.deb \
        || { echo "setup-host: dpkg -i linux-source-5.10 failed" >&2; exit 1; }
    $SUDO rm -rf "$tmp"
}
if [ $need_5_10 -eq 1 ]; then
    command -v apt-get >/dev/null || { echo "setup-host: no apt-get here; put a 5.10 kernel source at /usr/src/linux-source-5.10.tar.xz" >&2; exit 1; }
    install_linux_source_5_10
fi
