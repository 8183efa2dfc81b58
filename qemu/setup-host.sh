#!/usr/bin/env bash
# Installs what building and booting the test kernel needs on a Debian host.
#   --check-only         report what is missing and exit 0 (the project's tests
#                        then skip those parts, saying why)
#   --with-report-tools  also Node.js, npm, Chromium and the Allure 3 report
#                        generator (npm package `allure`) for the HTML report
set -euo pipefail

check_only=0
report_tools=0
for arg in "$@"; do
    case "$arg" in
        --check-only) check_only=1 ;;
        --with-report-tools) report_tools=1 ;;
        *) echo "setup-host: unknown option $arg" >&2; exit 2 ;;
    esac
done

# linux-source-6.12: a second tree the probe module is built against (tests/test_probe_build.py)
packages=(qemu-system-x86 linux-source-6.1 linux-source-6.12 gcc make flex bison bc libelf-dev
          libssl-dev cpio xz-utils kmod linux-libc-dev libdrm-dev)
if [ $report_tools -eq 1 ]; then
    packages+=(chromium)
    # A machine may carry its own Node.js (whose npm the Debian package conflicts with).
    command -v npm >/dev/null || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
need_allure=0
if [ $report_tools -eq 1 ] && ! { command -v allure >/dev/null && allure --version 2>/dev/null | grep -q '^3\.'; }; then
    need_allure=1
fi
[ ${#missing[@]} -eq 0 ] && [ $need_allure -eq 0 ] && exit 0

if [ $check_only -eq 1 ]; then
    [ ${#missing[@]} -gt 0 ] && echo "setup-host: not installed: ${missing[*]} (the tests that need them will say so)" >&2
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
