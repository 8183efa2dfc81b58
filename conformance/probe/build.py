"""Building the probe module (qemu/probe, plain Kbuild) against a kernel build dir.

For a board: ``--kdir DIR --cross-compile PREFIX`` builds it here, against the
board's kernel tree, and the remote target pushes the ``.ko``.  The copy is
built outside the repository (one per kernel dir and toolchain), so the
repository gets no build outputs and two kernels never share a ``.ko``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from conformance.errors import SetupError
from conformance.qemu.kernel import REPO_ROOT, _FileLock, cache_root, parse_config

PROBE_DIR = REPO_ROOT / "qemu" / "probe"
MODULE = "dmabuf_probe.ko"
# Build outputs of an earlier in-tree build must not be copied into the build dir.
NOT_SOURCES = shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd", "*.cmd",
                                     "Module.symvers", "modules.order", "__pycache__")
# The kernel's ARCH= for a configured tree, by the option only that architecture sets.
_ARCH_OPTIONS = (("CONFIG_ARM64", "arm64"), ("CONFIG_X86_64", "x86_64"), ("CONFIG_X86_32", "x86"),
                 ("CONFIG_ARM", "arm"), ("CONFIG_RISCV", "riscv"))


class ProbeBuildError(SetupError):
    """The probe did not build against the given kernel; the message has make's tail."""


def kernel_arch(kdir: Path) -> str:
    """ARCH= of the configured kernel build dir ``kdir`` (read from its .config)."""
    config = kdir / ".config"
    if not config.is_file():
        raise ProbeBuildError(f"--kdir {kdir}: no .config there; give the kernel's build "
                              "directory (the O= dir, or the tree it was built in)")
    options = parse_config(config.read_text(errors="replace"))
    for option, arch in _ARCH_OPTIONS:
        if options.get(option) == "y":
            return arch
    raise ProbeBuildError(f"--kdir {kdir}: cannot tell the architecture from its .config")


def build_probe_module(kdir: Path, *, cross_compile: str = "", arch: Optional[str] = None,
                       out: Optional[Path] = None) -> Path:
    """Build the probe against ``kdir``; returns the ``.ko``."""
    kdir = Path(kdir).resolve()
    if not (kdir / "Makefile").exists():
        raise ProbeBuildError(f"--kdir {kdir}: not a kernel build directory (no Makefile)")
    arch = arch or kernel_arch(kdir)
    if out is None:
        key = hashlib.sha256(f"{kdir}\0{arch}\0{cross_compile}".encode()).hexdigest()[:16]
        out = cache_root() / "probe" / key
    make = ["make", "-C", str(out), f"KDIR={kdir}", f"ARCH={arch}"]
    if cross_compile:
        if shutil.which(cross_compile + "gcc") is None:
            raise ProbeBuildError(f"--cross-compile {cross_compile}: {cross_compile}gcc is not "
                                  "on PATH")
        make.append(f"CROSS_COMPILE={cross_compile}")
    with _FileLock(out.parent / f"{out.name}.lock"):
        # copy2 keeps the sources' mtimes, so kbuild rebuilds exactly when they changed.
        shutil.copytree(PROBE_DIR, out, ignore=NOT_SOURCES, dirs_exist_ok=True,
                        copy_function=shutil.copy2)
        r = subprocess.run(make, capture_output=True, text=True)
    if r.returncode != 0 or not (out / MODULE).is_file():
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-15:])
        raise ProbeBuildError(f"the probe did not build against {kdir} ({' '.join(make)}):\n"
                              f"{tail}")
    return out / MODULE
