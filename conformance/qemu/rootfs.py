"""The root file system of a guest that cannot run the host's binaries (arm64 on x86_64).

An x86_64 guest mounts the host's own ``/`` over 9p and runs the host's
python.  An arm64 guest needs arm64 binaries, so its root is a minimal Debian
userspace made from Debian packages only::

    mmdebstrap --variant=extract --arch=arm64 \\
        --include=python3-minimal,libpython3.11-stdlib,busybox-static bookworm DIR

(5-20 s, 75 MB).  ``extract`` only unpacks: there is no ``/bin/sh`` and no
``/proc``, so the builder adds the mount points and busybox applet links.  The
root holds no copy of the repository: the guest mounts the host's ``/`` at
``/host`` (a second 9p share) and runs the repository, the probe module and
``qemu/guest/init`` from there.  So the root is built once per key (Debian
suite, architecture, packages and this module's own layout) and stays cached
while the code changes, next to the kernels under ``cache_root()/root/``.

PID 1 is :data:`HOST_INIT`, a few lines that mount the host share and exec
what follows ``--`` on the kernel command line (the kernel passes it to init as
its arguments): the root's python3 running the host's ``qemu/guest/init``, as
the x86_64 guest runs it as init directly.

CLI: ``python -m conformance.qemu.rootfs build [--arch aarch64]`` prints the root's path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from conformance.errors import SetupError
from conformance.qemu.arch import ArchSpec, get_arch
from conformance.qemu.kernel import _FileLock, _run_logged, cache_root

DEBIAN_SUITE = "bookworm"
# python3-minimal has the interpreter and the modules it starts with; libpython3.11-stdlib the
# rest of the standard library the agent imports (ctypes, mmap, json, selectors ...);
# busybox-static the shell, mount and insmod that qemu/guest/init runs.
PACKAGES: tuple[str, ...] = ("python3-minimal", "libpython3.11-stdlib", "busybox-static")
GUEST_PYTHON = "/usr/bin/python3"
HOST_MOUNT = "/host"  # where the guest sees the host's /
HOST_TAG = "host"  # its 9p mount tag
INIT_PATH = "/dmabuf-conformance-init"
# Mount points and writable places that qemu/guest/init expects; extract makes none of them.
DIRS: tuple[str, ...] = ("proc", "sys", "dev", "run", "tmp", HOST_MOUNT.strip("/"))
# The applets qemu/guest/init and a person at the shell (boot --shell) use.  Links are made
# here, not with `busybox --install` in the guest: the root is shared read-only by every guest.
APPLETS: tuple[str, ...] = (
    "sh", "ash", "mount", "umount", "mkdir", "ln", "cat", "tr", "echo", "insmod", "rmmod",
    "lsmod", "setsid", "ls", "dmesg", "sleep", "ps", "kill", "cp", "mv", "rm", "grep", "sed",
    "head", "tail", "uname", "env", "true", "false", "test", "[", "printf", "id", "df",
    "free", "hostname", "ip", "mknod", "stat", "sync", "wc", "xargs", "touch", "readlink",
    "hexdump", "od", "cut", "sort", "date", "chmod", "find", "poweroff", "reboot", "vi", "less",
)
# PID 1: make the host's / visible at /host, then run the command given after `--`.
# On failure it says why and powers off (panic=-1 and -no-reboot end QEMU) rather than hang.
HOST_INIT = f"""#!/bin/busybox sh
# PID 1 of a guest with its own Debian root (conformance/qemu/rootfs.py): the repository,
# the probe module and the conformance init live on the host, shared over 9p as "{HOST_TAG}".
if ! /bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro \\
        {HOST_TAG} {HOST_MOUNT}; then
    echo "[init] cannot mount the host's / (9p tag {HOST_TAG}) at {HOST_MOUNT}"
    exec /bin/busybox reboot -f
fi
if [ -z "$1" ] || [ ! -e "$1" ]; then
    echo "[init] no init to run: give it and its arguments after -- on the kernel command line"
    exec /bin/busybox reboot -f
fi
exec "$@"
"""
# Bump when the layout made here changes in a way the text above does not show.
LAYOUT_VERSION = "2"  # 2: the standard library byte-compiled (_compile_stdlib)


class RootBuildError(SetupError):
    """The guest root could not be made; the message says what to install or where the log is."""


@dataclass(frozen=True)
class GuestRoot:
    path: Path  # the root directory, shared read-only as the guest's /
    key: str
    arch: str
    python: str = GUEST_PYTHON  # the interpreter, as the guest sees it


def root_key(spec: ArchSpec, suite: str = DEBIAN_SUITE,
             packages: Sequence[str] = PACKAGES) -> str:
    """What the root is made of: arch, suite, packages and the layout this module adds."""
    desc = json.dumps({"arch": spec.debian_arch, "suite": suite, "packages": sorted(packages),
                       "dirs": DIRS, "applets": APPLETS, "init": HOST_INIT,
                       "layout": LAYOUT_VERSION}, sort_keys=True)
    return hashlib.sha256(desc.encode()).hexdigest()[:16]


def mmdebstrap_argv(spec: ArchSpec, target: Path, suite: str = DEBIAN_SUITE,
                    packages: Sequence[str] = PACKAGES,
                    mirror: Optional[str] = None) -> list[str]:
    """The command that unpacks the root: Debian packages only, no maintainer scripts run."""
    if not spec.debian_arch:
        raise RootBuildError(f"no Debian architecture known for {spec.name} guests")
    argv = ["mmdebstrap", "--variant=extract", f"--arch={spec.debian_arch}",
            "--include=" + ",".join(packages), suite, str(target)]
    if mirror:
        argv.append(mirror)
    return argv


def root_dir(spec: ArchSpec) -> Path:
    return cache_root() / "root" / f"{spec.name}-{root_key(spec)}"


def _say(msg: str) -> None:
    print(f"[rootfs] {msg}", file=sys.stderr, flush=True)


def _inside(root: Path, rel: str) -> Path:
    """``root/rel`` with an absolute symlink on the way taken inside ``root``, not the host.

    A merged-/usr root has ``bin -> usr/bin``; were it ``bin -> /usr/bin``, writing
    through it from the host would write into the host's own /usr/bin.
    """
    path = root
    for part in Path(rel).parts:
        path = path / part
        if path.is_symlink():
            link = os.readlink(path)
            path = root / link.lstrip("/") if link.startswith("/") else path.parent / link
    return path


def _finish(root: Path) -> None:
    """Mount points, the busybox links and PID 1: what ``extract`` leaves out."""
    for d in DIRS:
        _inside(root, d).mkdir(parents=True, exist_ok=True)
    bindir = _inside(root, "bin")
    if not (bindir / "busybox").is_file():
        raise RootBuildError(f"{root}: no /bin/busybox after unpacking busybox-static")
    for applet in APPLETS:
        link = bindir / applet
        # A real program from a Debian package (if one came in as a dependency) wins.
        if not link.exists() and not link.is_symlink():
            link.symlink_to("busybox")
    init = _inside(root, INIT_PATH.strip("/"))
    init.write_text(HOST_INIT)
    init.chmod(0o755)
    python = _inside(root, GUEST_PYTHON.strip("/"))
    if not python.exists():  # exists() follows the python3 -> python3.11 link, inside root
        raise RootBuildError(f"{root}: no {GUEST_PYTHON} after unpacking {', '.join(PACKAGES)}")


def _compile_stdlib(root: Path, log: Path) -> None:
    """Byte-compile the root's standard library with a host python of the same version.

    ``extract`` runs no maintainer scripts, so Debian's py3compile never made the
    ``.pyc`` files, and the root is read-only in the guest: every boot compiled
    each module it imported under TCG (importing the agent took 10 s).  A
    ``.pyc`` is the same on every architecture for one minor version, so the
    host's interpreter makes them.  Without a host python of that version the
    root still works, only slower to boot.
    """
    libs = sorted(p for p in _inside(root, "usr/lib").glob("python3.*")
                  if re.fullmatch(r"python3\.\d+", p.name))
    if not libs:
        return
    version = libs[-1].name[len("python"):]
    host = (sys.executable if f"{sys.version_info[0]}.{sys.version_info[1]}" == version
            else shutil.which(f"python{version}"))
    if host is None:
        _say(f"no python{version} on this host: the guest's standard library stays "
             "uncompiled (each boot compiles what it imports, several seconds under TCG)")
        return
    # -d: tracebacks name the guest's paths; -j 0: every core; -q: errors only.
    _run_logged([host, "-m", "compileall", "-q", "-j", "0", "-d", f"/usr/lib/{libs[-1].name}",
                 str(libs[-1])], log, f"byte-compiling the guest's python{version} library")


def ensure_root(arch: str = "aarch64", *, mirror: Optional[str] = None) -> GuestRoot:
    """The guest root for ``arch``, from the cache or made now (under a file lock)."""
    spec = get_arch(arch)
    if shutil.which("mmdebstrap") is None:
        raise RootBuildError(
            f"mmdebstrap not found: the {spec.name} guest's root is made with it "
            "(install it with `apt-get install mmdebstrap`, or run qemu/setup-host.sh)")
    key = root_key(spec)
    root = root_dir(spec)
    ready = root.with_name(root.name + ".ready")
    with _FileLock(root.with_name(root.name + ".lock")):
        if ready.exists() and root.is_dir():
            return GuestRoot(path=root, key=key, arch=spec.name)
        # mmdebstrap wants an empty or missing target; a half-made root from an
        # interrupted build is thrown away, then the finished one renamed into place.
        work = root.with_name(root.name + ".tmp")
        for stale in (work, root):
            if stale.exists():
                shutil.rmtree(stale)
        log = root.with_name(root.name + ".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"dmabuf-conformance guest root {key} for {spec.name}\n")
        started = time.monotonic()
        _say(f"making the {spec.name} guest root from Debian {DEBIAN_SUITE} packages "
             f"(about 10-20 s); log: {log}")
        _run_logged(mmdebstrap_argv(spec, work, mirror=mirror), log,
                    f"mmdebstrap ({spec.debian_arch} {DEBIAN_SUITE} root; it needs the "
                    "Debian mirror)")
        _finish(work)
        _compile_stdlib(work, log)
        work.rename(root)
        ready.write_text(json.dumps({"key": key, "seconds": round(time.monotonic() - started,
                                                                    1)}))
        _say(f"made {root} in {time.monotonic() - started:.0f} s")
        return GuestRoot(path=root, key=key, arch=spec.name)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.qemu.rootfs",
                                 description="make or locate the Debian root of a foreign guest")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="make (or reuse) the root and print its path")
    b.add_argument("--arch", default="aarch64")
    b.add_argument("--mirror", default=None, help="Debian mirror (default: mmdebstrap's)")
    b.add_argument("--print-cmd", action="store_true",
                   help="print the mmdebstrap command instead of running it")
    args = ap.parse_args(argv)
    try:
        spec = get_arch(args.arch)
        if args.print_cmd:
            print(" ".join(mmdebstrap_argv(spec, root_dir(spec), mirror=args.mirror)))
            return 0
        print(ensure_root(args.arch, mirror=args.mirror).path)
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
