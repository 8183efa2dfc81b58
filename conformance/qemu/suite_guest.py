"""The guest a conformance run boots, built in one place.

``pytest --target=qemu`` (fixtures/qemu.py) and ``python -m conformance.qemu.boot``
(``--print-cmd``, ``--shell``) both call :func:`suite_guest_config`, so the
command line a person prints or runs by hand is the run's own: the same kernel
arguments (``swiotlb=force``), the same probe module, the same CMA area.

The probe is built out of the repository, in a copy next to the kernel's build
directory: each kernel gets its own ``.ko`` (a matrix run or another user
building against another kernel cannot overwrite it), and the repository gets
no build outputs.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from conformance.errors import SetupError
from conformance.qemu.arch import get_arch
from conformance.qemu.boot import DEFAULT_MEMORY_MB, GuestConfig
from conformance.qemu.kernel import REPO_ROOT, KernelBuild, _FileLock
from conformance.qemu.rootfs import ensure_root

PROBE_DIR = REPO_ROOT / "qemu" / "probe"

# swiotlb=force makes the probe's non-coherent devices see a bounce copy that
# only moves at map/unmap/sync, so a missing CMO shows in the data on x86
# (qemu/probe/README.md); the lockstep shadow is told so via dma_platform.
SUITE_CMDLINE: tuple[str, ...] = ("swiotlb=force",)
# Per guest architecture.  On arm64 the probe's non-coherent devices get the real
# arch_sync_dma_* cache maintenance (the DMA event log shows it) and the shadow is
# `noncoherent-pipt`; QEMU models no cache, so a missing CMO does not show in the
# data there: `--qemu-append swiotlb=force` bounces them as on x86 (`swiotlb-bounce`).
SUITE_CMDLINES: dict[str, tuple[str, ...]] = {
    "x86_64": SUITE_CMDLINE,
    "aarch64": (),
}

# Build outputs of an earlier in-tree build must not be copied into the build dir.
_NOT_SOURCES = shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd", "*.cmd",
                                      "Module.symvers", "modules.order",
                                      "__pycache__")


def _say(msg: str) -> None:
    print(f"[qemu] {msg}", file=sys.stderr, flush=True)


def probe_build_dir(build: KernelBuild) -> Path:
    return build.kdir.parent / f"{build.kdir.name}.probe"


def probe_make_argv(build: KernelBuild, out: Path) -> list[str]:
    """``make`` for the probe against ``build``; a foreign kernel gets ARCH= and CROSS_COMPILE=.

    Both are make command-line variables, so they reach kbuild's sub-make too.
    """
    argv = ["make", "-C", str(out), f"KDIR={build.kdir}"]
    spec = get_arch(build.arch)
    if spec.name != platform.machine():
        argv.append(f"ARCH={spec.kernel_arch}")
        if spec.cross_compile:
            argv.append(f"CROSS_COMPILE={spec.cross_compile}")
    return argv


def build_probe(build: KernelBuild) -> tuple[Path, ...]:
    """Build qemu/probe against the kernel; () if it cannot be (and say why).

    Without the probe the kernel-side families do not run, and the verdict says
    so (incomplete); this function only reports why.
    """
    if not (PROBE_DIR / "Makefile").is_file():
        return ()
    if not str(build.kdir) or not (build.kdir / "Makefile").exists():
        _say("probe module not built: no kernel build dir (--kdir) to build it against")
        return ()
    out = probe_build_dir(build)
    # One builder per kernel: xdist workers share the build through this lock.
    with _FileLock(build.kdir.parent / f"{build.kdir.name}.probe.lock"):
        # copy2 keeps the sources' mtimes, so kbuild rebuilds exactly when they changed.
        shutil.copytree(PROBE_DIR, out, ignore=_NOT_SOURCES, dirs_exist_ok=True,
                        copy_function=shutil.copy2)
        r = subprocess.run(probe_make_argv(build, out), capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-15:])
        _say(f"probe module did not build against {build.release}; kernel-side cases "
             f"will not run:\n{tail}")
        return ()
    return (out / "dmabuf_probe.ko",) if (out / "dmabuf_probe.ko").is_file() else ()


def suite_guest_config(
    build: KernelBuild,
    *,
    arch: str = "x86_64",
    extra_append: Sequence[str] = (),
    probe_modules: Optional[Sequence[Path]] = None,
    console_path: Optional[Path] = None,
    name: str = "guest",
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> GuestConfig:
    """The run's guest: suite kernel arguments, the probe built for ``build``.

    ``probe_modules=None`` builds the probe; pass ``()`` only to boot a guest
    deliberately without it (then the run's verdict is incomplete).
    """
    spec = get_arch(arch)
    if build.arch != spec.name:
        raise SetupError(f"the kernel {build.image} is built for {build.arch}, "
                         f"not for the {spec.name} guest")
    probes = build_probe(build) if probe_modules is None else tuple(probe_modules)
    # A guest that cannot run the host's binaries boots its own Debian root.
    root = ensure_root(spec.name) if spec.name != platform.machine() else None
    return GuestConfig(
        kernel=build, arch=spec.name, memory_mb=memory_mb, probe_modules=tuple(probes),
        extra_cmdline=(*SUITE_CMDLINES.get(spec.name, ()), *extra_append),
        console_path=console_path, name=name, root=root,
        python=root.python if root is not None else sys.executable,
    )
