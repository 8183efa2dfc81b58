"""Fixtures shared by the project's own tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from conformance.errors import GuestError, SetupError
from conformance.mutants.catalogue import load_catalogue, select
from conformance.mutants.workspace import Workspace
from conformance.qemu.boot import Guest
from conformance.qemu.kernel import KernelBuild, ensure_kernel
from conformance.qemu.ssh_standin import SshStandin
from conformance.qemu.suite_guest import suite_guest_config
from conformance.targets.qemu import QemuTarget


@pytest.fixture(scope="session")
def kernel_build() -> KernelBuild:
    """The suite's 6.1 test kernel (built or taken from the cache)."""
    try:
        return ensure_kernel(None)
    except SetupError as exc:
        pytest.skip(f"no test kernel: {exc}")


def _boot(build: KernelBuild, workdir: Path, name: str) -> QemuTarget:
    """A guest as a conformance run boots it: swiotlb=force, the probe built for ``build``."""
    config = suite_guest_config(build, console_path=workdir / "console.log", name=name)
    if not config.probe_modules:
        pytest.fail(f"the probe did not build against {build.kdir} (see the [qemu] lines above)")
    target = QemuTarget(Guest(config, workdir=workdir))
    target.start()
    return target


@pytest.fixture(scope="session")
def probe_guest(
    kernel_build: KernelBuild, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QemuTarget]:
    """The suite's guest (probe loaded, swiotlb=force), booted once for the probe's tests."""
    target = _boot(kernel_build, tmp_path_factory.mktemp("probe-guest"), "probe")
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture(scope="session")
def mutant_guest(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], QemuTarget]]:
    """``mutant_guest(name)``: a guest on the kernel of mutant ``name`` of qemu/mutants/.

    The mutant is built in the cached workspace (conformance/mutants/workspace.py:
    seconds once the workspace's clean kernel exists), booted on first use and
    kept for the session.
    """
    try:
        workspace = Workspace()
        catalogue = load_catalogue()
    except SetupError as exc:
        pytest.skip(f"no mutant workspace: {exc}")
    booted: dict[str, QemuTarget] = {}

    def guest(name: str) -> QemuTarget:
        if name not in booted:
            (mutant,) = select(catalogue, [name])
            build = workspace.build(mutant).kernel
            workdir = tmp_path_factory.mktemp(f"mutant-{name}")
            booted[name] = _boot(build, workdir, name)
        return booted[name]

    try:
        yield guest
    finally:
        for target in booted.values():
            target.stop()


@pytest.fixture(scope="session")
def ssh_standin(
    kernel_build: KernelBuild, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SshStandin]:
    """A guest standing in for a board: sshd at ``.board`` (root@127.0.0.1:PORT), key ``.identity``.

    The suite's kernel, swiotlb=force and CMA, no probe loaded (the remote target
    pushes it: ``.build_probe()``); a guest reboot brings it back, as a board.
    """
    standin = SshStandin(kernel_build,
                         console_path=tmp_path_factory.mktemp("ssh-standin") / "console.log")
    try:
        standin.start()
    except GuestError:
        standin.stop()
        raise  # a stand-in that does not boot is a failure, not a skip
    except SetupError as exc:  # no QEMU, dropbear or ssh here
        standin.stop()
        pytest.skip(f"no ssh stand-in: {exc}")
    try:
        yield standin
    finally:
        standin.stop()
