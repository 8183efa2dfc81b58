"""The probe module compiles against kernel trees other than the test kernel's (``make KDIR=...``).

Every Debian ``linux-source-*`` tarball in /usr/src except 6.1 (which the
QEMU tests build against already) is unpacked once into the cache, configured
with defconfig plus what the probe needs, ``modules_prepare``d, and the
probe is compiled against it.  That is what a vendor does for a board.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conformance.qemu.kernel import REPO_ROOT, cache_root

pytestmark = pytest.mark.slow

PROBE_OPTIONS = (
    "MODULES",
    "MODULE_UNLOAD",
    "DMABUF_HEAPS",
    "DMABUF_HEAPS_SYSTEM",
    "KPROBES",
    "DEBUG_FS",
    "SWIOTLB",
)


def _tarballs() -> list[Path]:
    found = sorted(Path("/usr/src").glob("linux-source-*.tar.xz"))
    return [t for t in found if not t.name.startswith("linux-source-6.1.")]


def _prepared_tree(tarball: Path) -> Path:
    version = re.sub(r"^linux-source-|\.tar\.xz$", "", tarball.name)
    root = cache_root() / "kdir" / version
    tree = root / f"linux-source-{version}"
    stamp = root / "prepared"
    if stamp.exists():
        return tree
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(root)  # noqa: S202 - Debian's own kernel source
    env = {**os.environ, "KCONFIG_NOTIMESTAMP": "1"}
    subprocess.run(["make", "-s", "defconfig"], cwd=tree, check=True, env=env)
    enable = [a for o in PROBE_OPTIONS for a in ("--enable", o)]
    subprocess.run(["./scripts/config", *enable], cwd=tree, check=True)
    subprocess.run(["make", "-s", "olddefconfig"], cwd=tree, check=True, env=env)
    subprocess.run(
        ["make", "-s", f"-j{os.cpu_count() or 2}", "modules_prepare"],
        cwd=tree,
        check=True,
        env=env,
        capture_output=True,
    )
    stamp.touch()
    return tree


@pytest.mark.parametrize("tarball", _tarballs(), ids=lambda t: t.name)
def test_probe_builds_against_another_kernel_tree(tarball: Path, tmp_path: Path) -> None:
    tree = _prepared_tree(tarball)
    src = tmp_path / "probe"
    shutil.copytree(
        REPO_ROOT / "qemu" / "probe",
        src,
        ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod*", ".*.cmd", "broken_heap"),
    )
    # A modules_prepare'd tree has no vmlinux symbols: modpost cannot resolve the
    # module's imports there (the QEMU tests link and load it for real on 6.1).
    r = subprocess.run(
        ["make", f"KDIR={tree}", "KBUILD_MODPOST_WARN=1"], cwd=src, capture_output=True, text=True
    )
    lines = (r.stdout + r.stderr).splitlines()
    errors = [line for line in lines if " error: " in line]
    assert r.returncode == 0 and (src / "dmabuf_probe.ko").is_file(), "\n".join(errors) or r.stderr
    warnings = [line for line in lines if "warning:" in line]
    assert not warnings, "the compiler warned:\n" + "\n".join(warnings)
