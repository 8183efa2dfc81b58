"""Fixtures shared by the project's own tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conformance.errors import SetupError
from conformance.qemu.boot import Guest, GuestConfig
from conformance.qemu.kernel import KernelBuild, ensure_kernel
from conformance.targets.qemu import QemuTarget

PROBE_DIR = Path(__file__).resolve().parents[1] / "qemu" / "probe"
MUTANT_HEAPS = PROBE_DIR / "broken_heap" / "mutant_system_heap.ko"


@pytest.fixture(scope="session")
def kernel_build() -> KernelBuild:
    """The suite's 6.1 test kernel (built or taken from the cache)."""
    try:
        return ensure_kernel(None)
    except SetupError as exc:
        pytest.skip(f"no test kernel: {exc}")


@pytest.fixture(scope="session")
def mutant_guest(
    kernel_build: KernelBuild, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QemuTarget]:
    """A guest with the probe and the test-only mutant heaps, booted once for every test
    that needs them: the probe's own tests and the kernel-mutant tests of the cases."""
    for make_target in ("modules", "broken_heap"):
        r = subprocess.run(
            ["make", "-C", str(PROBE_DIR), f"KDIR={kernel_build.kdir}", make_target],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            tail = "\n".join((r.stdout + r.stderr).splitlines()[-20:])
            pytest.fail(f"`make {make_target}` for the probe failed:\n{tail}")
    workdir = tmp_path_factory.mktemp("mutant-guest")
    target = QemuTarget(
        Guest(
            GuestConfig(
                kernel=kernel_build,
                probe_modules=(PROBE_DIR / "dmabuf_probe.ko", MUTANT_HEAPS),
                extra_cmdline=("swiotlb=force",),
                console_path=workdir / "console.log",
                name="mutants",
            ),
            workdir=workdir,
        )
    )
    target.start()
    try:
        yield target
    finally:
        target.stop()
