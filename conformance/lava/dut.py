"""The LAVA DUT: the suite's test kernel and probe, and a busybox initramfs around the host's root.

The DUT boots the kernel ``pytest --target=qemu`` boots (``ensure_kernel``,
with the suite's kernel arguments and CMA area, ``suite_guest_config``) and an
initramfs of Debian's busybox-static plus ``lava/dut/init``, which mounts the
host's ``/`` read-only over 9p at ``/host`` and loads the probe from there.  So
what the DUT image has is the host's python3, pytest and this repository, and
nothing is installed on it.  LAVA adds its test overlay to the same initramfs
(``overlays: {lava: true}``), which needs no libguestfs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import SetupError
from conformance.lava import cpio
from conformance.lava.install import LavaInstall
from conformance.qemu.arch import get_arch
from conformance.qemu.boot import GuestConfig
from conformance.qemu.kernel import DEFAULT_FRAGMENT, REPO_ROOT, KernelBuild, ensure_kernel
from conformance.qemu.suite_guest import suite_guest_config

INIT = REPO_ROOT / "lava" / "dut" / "init"
KERNEL_FRAGMENT = REPO_ROOT / "lava" / "dut" / "kernel.config"
HOST_TAG = "host"  # the 9p tag lava/dut/init mounts and the device dictionary exports


@dataclass(frozen=True)
class Dut:
    kernel: Path
    ramdisk: Path
    cmdline: str
    release: str
    probe_modules: tuple[Path, ...]


def initramfs(busybox: Path, init: Path = INIT) -> bytes:
    if not busybox.is_file():
        raise SetupError(f"{busybox} does not exist: busybox-static is unpacked by "
                         "`bash qemu/setup-host.sh --with-lava`")
    return cpio.archive([
        cpio.directory("bin"), cpio.directory("dev"), cpio.directory("proc"),
        cpio.directory("sys"), cpio.directory("tmp"), cpio.directory("host"),
        cpio.char_device("dev/console", 5, 1),
        cpio.file("bin/busybox", busybox.read_bytes()),
        cpio.symlink("bin/sh", "busybox"),
        cpio.file("init", init.read_bytes()),
    ])


def ensure_initramfs(busybox: Path, out_dir: Path) -> Path:
    """The initramfs, cached by content (LAVA copies it before adding its overlay)."""
    data = initramfs(busybox)
    path = out_dir / f"dut-initramfs-{hashlib.sha256(data).hexdigest()[:16]}.cpio"
    if not path.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def kernel_cmdline(config: GuestConfig) -> str:
    """The suite guest's kernel arguments (console, loglevel, panic, CMA, swiotlb) and the probe.

    No root=: the initramfs is the root.  No ``quiet`` and no ``loglevel=5``:
    LAVA waits for the kernel's "Linux version" line, a KERN_NOTICE, so
    lava/dut/init sets the suite's console loglevel (5) once the kernel is up.
    """
    arch = get_arch(config.arch)
    parts = [f"console={arch.console}", "panic=-1", "oops=panic",
             *arch.kernel_args, "rdinit=/init"]
    if config.cma:
        parts.append(f"cma={config.cma}")
    if config.probe_modules:
        parts.append("dmabuf_conformance.probe=" + ",".join(map(str, config.probe_modules)))
    parts += list(config.extra_cmdline)
    return " ".join(parts)


def dut_kernel(out_dir: Path) -> KernelBuild:
    """The suite's test kernel with initramfs support, a cached build of its own.

    A fragment given to ``ensure_kernel`` replaces the suite's, so the DUT's is
    the suite's followed by ``lava/dut/kernel.config`` (the later line wins).
    """
    text = (DEFAULT_FRAGMENT.read_text() + "\n# lava/dut/kernel.config\n"
            + KERNEL_FRAGMENT.read_text())
    fragment = out_dir / "dut-kernel.config"
    if not fragment.is_file() or fragment.read_text() != text:
        out_dir.mkdir(parents=True, exist_ok=True)
        fragment.write_text(text)
    return ensure_kernel(fragment=fragment)


def prepare_dut(install: LavaInstall, out_dir: Path) -> Dut:
    """Build (or take from the cache) the kernel, the probe and the initramfs."""
    build = dut_kernel(out_dir)
    config = suite_guest_config(build)
    config.check()
    return Dut(kernel=build.image, ramdisk=ensure_initramfs(install.busybox, out_dir),
               cmdline=kernel_cmdline(config), release=build.release,
               probe_modules=config.probe_modules)
