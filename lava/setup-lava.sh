#!/usr/bin/env bash
# Installs LAVA's dispatcher (lava-run) without a LAVA server, for `tox -e lava`.
# Called by `qemu/setup-host.sh --with-lava`; idempotent, and everything but one
# directory LAVA insists on lives in the cache, outside the repository:
#
#   $LAVA_HOME (default ~/.cache/dmabuf-conformance/lava)
#     root/      lava-dispatcher, lava-common, lava-dispatcher-host, lava-server and
#                busybox-static from Debian 12, unpacked with dpkg-deb -x (not installed:
#                `apt-get install lava-dispatcher` pulls ~136 packages and upgrades
#                systemd, udev and perl-base on the host)
#     venv/      LAVA's Python dependencies, from PyPI
#     bin/lava-run   the dispatcher, run from root/ with venv/'s interpreter
#
# lava-server is unpacked only for its device-type templates
# (usr/share/lava-server/device-types), which a device dictionary extends;
# busybox-static is the DUT's initramfs shell (conformance/lava/dut.py).
#   --check-only   exit 0 with a note when it is not installed, install nothing
set -euo pipefail

check_only=0
for arg in "$@"; do
    case "$arg" in
        --check-only) check_only=1 ;;
        *) echo "setup-lava: unknown option $arg" >&2; exit 2 ;;
    esac
done

cache=${DMABUF_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dmabuf-conformance}
LAVA_HOME=$cache/lava
# The version the job and device templates of lava/ were written and tested against.
LAVA_VERSION=2023.01-2
STAMP=$LAVA_HOME/installed-$LAVA_VERSION
# Measured to work with LAVA 2023.01 on Python 3.11 (Debian 12's interpreter).
PY_DEPS=(aiohttp==3.14.5 configobj==5.0.9 Jinja2==3.1.6 python-magic==0.4.27 netifaces==0.11.0
         pexpect==4.9.0 pyudev==0.24.5 requests==2.34.2 setproctitle==1.3.8 pytz==2026.6
         PyYAML==6.0.4 voluptuous==0.16.0)
# LAVA's download directory is fixed (lava_common/constants.py DISPATCHER_DOWNLOAD_DIR).
DOWNLOAD_DIR=/var/lib/lava/dispatcher/tmp

if [ -f "$STAMP" ] && [ -x "$LAVA_HOME/bin/lava-run" ] && [ -d "$DOWNLOAD_DIR" ]; then
    exit 0
fi
if [ $check_only -eq 1 ]; then
    echo "setup-lava: lava-run is not installed (qemu/setup-host.sh --with-lava installs it in $LAVA_HOME)" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    # lava-run itself must run as root too (it creates $DOWNLOAD_DIR and runs QEMU as a job).
    echo "setup-lava: run as root: LAVA's dispatcher needs $DOWNLOAD_DIR and runs its jobs as root" >&2
    exit 1
fi
command -v apt-get >/dev/null || { echo "setup-lava: no apt-get here: LAVA is fetched from Debian 12's packages" >&2; exit 1; }

# Host tools: dpkg-deb/cpio to unpack and pack, a C compiler and Python headers
# for netifaces (no wheel for 3.11), the venv module, file's libmagic.
need=()
for p in python3-venv python3-dev gcc cpio libmagic1 qemu-system-x86; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup-lava: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        || { echo "setup-lava: apt-get install failed for: ${need[*]}" >&2; exit 1; }
fi

rm -rf "$LAVA_HOME.new"
mkdir -p "$LAVA_HOME.new/debs"
chmod 755 "$LAVA_HOME.new/debs"  # apt's _apt user writes the download here
echo "setup-lava: downloading lava-dispatcher $LAVA_VERSION and its unpack-only companions" >&2
(cd "$LAVA_HOME.new/debs" && apt-get download -qq lava-dispatcher="$LAVA_VERSION" \
    lava-common="$LAVA_VERSION" lava-dispatcher-host="$LAVA_VERSION" lava-server="$LAVA_VERSION" \
    busybox-static 2>&1 | grep -v "unsandboxed" >&2 || true)
for p in lava-dispatcher lava-common lava-dispatcher-host lava-server busybox-static; do
    ls "$LAVA_HOME.new/debs/${p}_"*.deb >/dev/null 2>&1 \
        || { echo "setup-lava: apt-get download $p failed (is Debian 12's main archive in apt's sources?)" >&2; exit 1; }
done
for deb in "$LAVA_HOME.new/debs/"*.deb; do
    dpkg-deb -x "$deb" "$LAVA_HOME.new/root"
done

echo "setup-lava: LAVA's Python dependencies in a venv" >&2
/usr/bin/python3 -m venv "$LAVA_HOME.new/venv"
"$LAVA_HOME.new/venv/bin/pip" install -q --disable-pip-version-check "${PY_DEPS[@]}" \
    || { echo "setup-lava: pip install of LAVA's dependencies failed" >&2; exit 1; }
site=$("$LAVA_HOME.new/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# LAVA's own modules, as Debian installs them (dist-packages is not on a venv's path).
echo "$LAVA_HOME/root/usr/lib/python3/dist-packages" > "$site/lava-debian.pth"
# Two LAVA modules import guestfs at load time (apply_overlay.py, utils/filesystem.py);
# python3-guestfs would pull libguestfs and a supermin appliance.  The jobs here put the
# overlay in a cpio initramfs, which LAVA unpacks without libguestfs, so a guestfs
# that refuses every use is enough, and a job that needs libguestfs fails saying so.
cat > "$site/guestfs.py" <<'EOF'
"""Not libguestfs: lava/setup-lava.sh installs no python3-guestfs (see there)."""


class GuestFS:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("libguestfs is not installed (lava/setup-lava.sh): use a ramdisk "
                           "with `format: cpio.newc` and `overlays: {lava: true}`")
EOF

mkdir -p "$LAVA_HOME.new/bin"
cat > "$LAVA_HOME.new/bin/lava-run" <<EOF
#!/bin/sh
# LAVA $LAVA_VERSION's dispatcher from $LAVA_HOME (lava/setup-lava.sh)
exec "$LAVA_HOME/venv/bin/python" "$LAVA_HOME/root/usr/bin/lava-run" "\$@"
EOF
chmod 755 "$LAVA_HOME.new/bin/lava-run"
touch "$LAVA_HOME.new/installed-$LAVA_VERSION"

# Only the venv's pip scripts carry the .new path; its interpreter finds its
# site-packages from where it is, so the move is safe.
rm -rf "$LAVA_HOME"
mv "$LAVA_HOME.new" "$LAVA_HOME"
mkdir -p "$DOWNLOAD_DIR"
"$LAVA_HOME/bin/lava-run" --help >/dev/null \
    || { echo "setup-lava: $LAVA_HOME/bin/lava-run does not start" >&2; exit 1; }
echo "setup-lava: lava-run is $LAVA_HOME/bin/lava-run" >&2
