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

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from conformance.qemu.boot import GuestConfig
from conformance.qemu.kernel import REPO_ROOT, KernelBuild, _FileLock

PROBE_DIR = REPO_ROOT / "qemu" / "probe"

# swiotlb=force makes the probe's non-coherent devices see a bounce copy that
# only moves at map/unmap/sync, so a missing CMO shows in the data on x86
# (qemu/probe/README.md); the lockstep shadow is told so via dma_platform.
SUITE_CMDLINE: tuple[str, ...] = ("swiotlb=force",)

# Build outputs of an earlier in-tree build must not be copied into the build dir.
_NOT_SOURCES = shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd", "*.cmd",
                                      "Module.symvers", "modules.order",
                                      "__pycache__")


def _say(msg: str) -> None:
    print(f"[qemu] {msg}", file=sys.stderr, flush=True)


def probe_build_dir(build: KernelBuild) -> Path:
    return build.kdir.parent / f"{build.kdir.name}.probe"


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
        r = subprocess.run(["make", "-C", str(out), f"KDIR={build.kdir}"],
                           capture_output=True, text=True)
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
) -> GuestConfig:
    """The run's guest: suite kernel arguments, the probe built for ``build``.

    ``probe_modules=None`` builds the probe; pass ``()`` only to boot a guest
    deliberately without it (then the run's verdict is incomplete).
    """
    probes = build_probe(build) if probe_modules is None else tuple(probe_modules)
    return GuestConfig(
        kernel=build, arch=arch, probe_modules=tuple(probes),
        extra_cmdline=(*SUITE_CMDLINE, *extra_append),
        console_path=console_path, name=name,
    )
