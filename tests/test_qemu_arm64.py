"""The arm64 guest: fragment selection by arch and page size, its Debian root, its command line.

The fast tests build nothing.  The ``slow`` ones cross-build the arm64 kernel
(about 3 min per page size on 2 cores, then cached), make the Debian root and
boot it; they skip, saying what is missing, on a host without the cross
compiler, qemu-system-aarch64, mmdebstrap or the kernel source
(``qemu/setup-host.sh --with-arm64`` installs them).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from conformance.errors import SetupError
from conformance.qemu import kernel, rootfs
from conformance.qemu.arch import UnsupportedPageSize, get_arch
from conformance.qemu.boot import Guest, GuestConfig
from conformance.qemu.kernel import (
    DEFAULT_FRAGMENT,
    DEFAULT_SOURCE_TARBALL,
    KernelBuild,
    KernelBuildError,
    build_key,
    fragments_for,
)
from conformance.qemu.rootfs import GuestRoot, RootBuildError, mmdebstrap_argv
from conformance.qemu.suite_guest import SUITE_CMDLINES, probe_make_argv, suite_guest_config
from conformance.targets.qemu import QemuTarget

CONFIG_DIR = DEFAULT_FRAGMENT.parent


# -- fragments by arch and page size ------------------------------------------------------


def test_arm64_fragments_apply_to_arm64_only() -> None:
    names = {a: [f.name for f in fragments_for((6, 1), arch=a)] for a in ("x86_64", "aarch64")}
    assert names["x86_64"] == [DEFAULT_FRAGMENT.name, "x86_64-boot.config"]
    assert names["aarch64"] == [DEFAULT_FRAGMENT.name, "arm64.config"]
    # the 16k fragment only for a 16k build, after the main one
    sixteen = [f.name for f in fragments_for((6, 1), arch="aarch64", page_size="16k")]
    assert sixteen[0] == DEFAULT_FRAGMENT.name
    assert set(sixteen[1:]) == {"arm64.config", "arm64-16k.config"}


def test_arm64_fragment_has_what_the_virt_board_needs() -> None:
    options = kernel.parse_config((CONFIG_DIR / "arm64.config").read_text())
    for name in ("CONFIG_SERIAL_AMBA_PL011_CONSOLE", "CONFIG_PCI_HOST_GENERIC"):
        assert options.get(name) == "y", name
    assert kernel.parse_config((CONFIG_DIR / "arm64-16k.config").read_text()) == {
        "CONFIG_ARM64_16K_PAGES": "y"}


def test_x86_key_does_not_see_the_arm64_fragments() -> None:
    """The arm64 fragments exist, yet x86_64's key is the one of its own fragments alone."""
    src = DEFAULT_FRAGMENT  # any file stands for the source: the key hashes its identity
    x86 = get_arch("x86_64")
    assert (build_key(src, fragments_for((6, 1), arch="x86_64"), x86)
            == build_key(src, [DEFAULT_FRAGMENT, CONFIG_DIR / "x86_64-boot.config"], x86))
    arm = get_arch("aarch64")
    four = build_key(src, fragments_for((6, 1), arch="aarch64"), arm)
    assert four != build_key(src, fragments_for((6, 1), arch="aarch64", page_size="16k"), arm)


def test_arches_line_scopes_and_a_typo_is_refused(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    main = tmp_path / DEFAULT_FRAGMENT.name
    main.write_text("CONFIG_X=y\n")
    scoped = tmp_path / "both.config"
    scoped.write_text("# arches: aarch64, x86_64\n# kernels: >=6.0\nCONFIG_Y=y\n")
    monkeypatch.setattr(kernel, "CONFIG_DIR", tmp_path)
    monkeypatch.setattr(kernel, "DEFAULT_FRAGMENT", main)
    assert fragments_for((6, 1), arch="x86_64") == [main, scoped]
    assert fragments_for((5, 10), arch="aarch64") == [main]  # the kernels: line still counts
    (tmp_path / "typo.config").write_text("# arches: arm64\nCONFIG_Z=y\n")
    with pytest.raises(KernelBuildError, match="unknown architecture.*arm64.*known: aarch64"):
        fragments_for((6, 1), arch="aarch64")


def test_page_size_is_checked_against_the_arch() -> None:
    assert get_arch("aarch64").check_page_size("16K") == "16k"
    with pytest.raises(UnsupportedPageSize, match="16k.*x86_64.*offered: 4k"):
        get_arch("x86_64").check_page_size("16k")
    with pytest.raises(UnsupportedPageSize):
        kernel.ensure_kernel(arch="aarch64", page_size="64k")
    with pytest.raises(KernelBuildError, match="taken as it is"):
        fragments_for((6, 1), Path(__file__), arch="aarch64", page_size="16k")


# -- the Debian root ------------------------------------------------------------------------


def test_root_builder_command_line(tmp_path: Path) -> None:
    argv = mmdebstrap_argv(get_arch("aarch64"), tmp_path / "r")
    assert argv[:3] == ["mmdebstrap", "--variant=extract", "--arch=arm64"]
    include = next(a for a in argv if a.startswith("--include="))
    assert set(include.split("=", 1)[1].split(",")) == {
        "python3-minimal", "libpython3.11-stdlib", "busybox-static"}
    assert argv[-2:] == ["bookworm", str(tmp_path / "r")]
    assert mmdebstrap_argv(get_arch("aarch64"), tmp_path, mirror="http://m/debian")[-1] == (
        "http://m/debian")


def test_root_key_follows_arch_and_packages() -> None:
    arm = get_arch("aarch64")
    assert rootfs.root_key(arm) == rootfs.root_key(arm)
    assert rootfs.root_key(arm) != rootfs.root_key(get_arch("x86_64"))
    assert rootfs.root_key(arm) != rootfs.root_key(arm, packages=(*rootfs.PACKAGES, "kmod"))


def test_finish_adds_what_extract_leaves_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    with pytest.raises(RootBuildError, match="no /bin/busybox"):
        rootfs._finish(root)
    (root / "bin" / "busybox").write_bytes(b"\x7fELF")
    (root / "bin" / "cat").write_bytes(b"a real cat")  # from a Debian package: kept
    with pytest.raises(RootBuildError, match="no /usr/bin/python3"):
        rootfs._finish(root)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "python3.11").write_bytes(b"")
    (root / "usr" / "bin" / "python3").symlink_to("python3.11")
    rootfs._finish(root)
    for d in ("proc", "sys", "dev", "run", "tmp", "host"):
        assert (root / d).is_dir(), d
    assert os.readlink(root / "bin" / "sh") == "busybox"
    assert os.readlink(root / "bin" / "insmod") == "busybox"
    assert (root / "bin" / "cat").read_bytes() == b"a real cat"
    init = root / rootfs.INIT_PATH.lstrip("/")
    assert init.read_text().startswith("#!/bin/busybox sh") and os.access(init, os.X_OK)


def test_an_absolute_symlink_stays_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("/usr/bin")  # would be the host's /usr/bin if followed
    assert rootfs._inside(root, "bin/sh") == root / "usr" / "bin" / "sh"


def test_no_mmdebstrap_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootfs.shutil, "which", lambda name: None)
    with pytest.raises(RootBuildError, match="mmdebstrap not found.*setup-host.sh"):
        rootfs.ensure_root("aarch64")


# -- the command line -----------------------------------------------------------------------


def _arm_guest(tmp_path: Path) -> Guest:
    image = tmp_path / "Image"
    image.write_bytes(b"\0")
    build = KernelBuild(image=image, kdir=tmp_path, release="6.1.0", config_hash="x",
                        arch="aarch64")
    root = GuestRoot(path=tmp_path / "root", key="k", arch="aarch64")
    return Guest(GuestConfig(kernel=build, arch="aarch64", root=root, python=root.python,
                             repo=Path("/w/repo"),
                             probe_modules=(Path("/c/probe/dmabuf_probe.ko"),)),
                 workdir=tmp_path)


def test_arm64_command_line_has_its_root_and_the_host_share(tmp_path: Path) -> None:
    argv = _arm_guest(tmp_path).command_line()
    assert argv[:5] == ["qemu-system-aarch64", "-machine", "virt", "-cpu", "max"]
    fsdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-fsdev"]
    assert fsdevs[0].startswith(f"local,id=root,path={tmp_path / 'root'},")
    assert fsdevs[1].startswith("local,id=host,path=/,") and "readonly=on" in fsdevs[1]
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert "virtio-9p-pci,fsdev=root,mount_tag=root" in devices
    assert "virtio-9p-pci,fsdev=host,mount_tag=host" in devices
    cmdline = argv[argv.index("-append") + 1].split()
    for want in ("console=ttyAMA0", "random.trust_cpu=on", f"init={rootfs.INIT_PATH}",
                 "dmabuf_conformance.probe=/host/c/probe/dmabuf_probe.ko"):
        assert want in cmdline, want
    assert "tsc=reliable" not in cmdline
    # everything after `--` goes to init: the root's python running the shared
    # qemu/guest/init, by its host path
    assert cmdline[-6:] == ["--", "/usr/bin/python3", "-S", "-u", "-B",
                            "/host/w/repo/qemu/guest/init"]  # the config's repository


def test_the_interpreter_is_looked_up_in_the_guest_root(tmp_path: Path) -> None:
    guest = _arm_guest(tmp_path)
    (tmp_path / "root").mkdir()
    with pytest.raises(SetupError, match="/usr/bin/python3 does not exist in the guest root"):
        guest.config.check()


def test_arm64_probe_is_cross_built_and_not_bounced_by_default(tmp_path: Path) -> None:
    arm = KernelBuild(image=tmp_path / "Image", kdir=tmp_path, release="6.1.0",
                      config_hash="x", arch="aarch64")
    argv = probe_make_argv(arm, tmp_path / "probe")
    assert "ARCH=arm64" in argv and "CROSS_COMPILE=aarch64-linux-gnu-" in argv
    x86 = KernelBuild(image=tmp_path / "bzImage", kdir=tmp_path, release="6.1.0",
                      config_hash="x")
    assert not any(a.startswith(("ARCH=", "CROSS_COMPILE=")) for a in probe_make_argv(x86,
                                                                                      tmp_path))
    # real cache maintenance on arm64 (noncoherent-pipt); swiotlb=force stays x86's default
    assert SUITE_CMDLINES["aarch64"] == () and SUITE_CMDLINES["x86_64"] == ("swiotlb=force",)
    with pytest.raises(SetupError, match="built for aarch64, not for the x86_64 guest"):
        suite_guest_config(arm, arch="x86_64", probe_modules=())


# -- build and boot (slow) ------------------------------------------------------------------


def _arm64_tools_or_skip() -> None:
    missing = [t for t in ("aarch64-linux-gnu-gcc", "qemu-system-aarch64", "mmdebstrap")
               if shutil.which(t) is None]
    if not DEFAULT_SOURCE_TARBALL.is_file():
        missing.append(str(DEFAULT_SOURCE_TARBALL))
    if missing:
        pytest.skip(f"no arm64 guest here: missing {', '.join(missing)} "
                    "(qemu/setup-host.sh --with-arm64)")


def _boot(page_size: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QemuTarget]:
    _arm64_tools_or_skip()
    # Past the tool check, a build or boot failure is a failure, not a skip.
    build = kernel.ensure_kernel(arch="aarch64", page_size=page_size)
    workdir = tmp_path_factory.mktemp(f"arm64-{page_size}")
    config = suite_guest_config(build, arch="aarch64", console_path=workdir / "console.log",
                                name=f"arm64-{page_size}")
    assert config.probe_modules, "the probe did not cross-build (see the [qemu] lines above)"
    target = QemuTarget(Guest(config, workdir=workdir))
    target.start()
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture(scope="module")
def arm64_guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QemuTarget]:
    yield from _boot("4k", tmp_path_factory)


@pytest.fixture(scope="module")
def arm64_16k_guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QemuTarget]:
    yield from _boot("16k", tmp_path_factory)


@pytest.mark.slow
def test_arm64_guest_runs_every_exporter_with_real_cache_maintenance(
    arm64_guest: QemuTarget,
) -> None:
    info = arm64_guest.info()
    assert info.machine == "aarch64" and info.kernel.startswith("6.1")
    assert info.page_size == 4096 and info.probe_loaded
    # no bounce: the probe's non-coherent devices get arch_sync_dma_* (the shadow's platform)
    assert info.extra["dma_platform"] == "noncoherent-pipt"
    names = {e.name for e in arm64_guest.exporters()}
    assert {"heap:system", "udmabuf", "vgem"} <= names
    assert any(n.startswith("heap:") and n != "heap:system" for n in names), names  # CMA
    buf = arm64_guest.allocate("heap:system", 3 * 4096)
    m = arm64_guest.mmap(buf)
    assert arm64_guest.cpu_read(m, 0, 64) == bytes(64)
    arm64_guest.cpu_write(m, 4000, b"arm64\x00\xff")
    assert arm64_guest.cpu_read(m, 4000, 7) == b"arm64\x00\xff"
    arm64_guest.close_all()
    health = arm64_guest.health()
    assert health.warnings == 0 and health.dma_api_errors == 0, health.log_excerpt


@pytest.mark.slow
def test_arm64_16k_guest_has_16k_pages(arm64_16k_guest: QemuTarget) -> None:
    info = arm64_16k_guest.info()
    assert info.machine == "aarch64" and info.page_size == 16384 and info.probe_loaded
    buf = arm64_16k_guest.allocate("heap:system", 16384)
    assert arm64_16k_guest.buffer_size(buf) == 16384
    arm64_16k_guest.close_all()


def test_the_guest_stdlib_is_byte_compiled_by_a_host_python_of_its_version(tmp_path: Path) -> None:
    """extract runs no py3compile; without .pyc files each guest boot compiles under TCG."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    lib = tmp_path / "usr" / "lib" / f"python{version}"
    lib.mkdir(parents=True)
    (lib / "mod.py").write_text("X = 1\n")
    rootfs._compile_stdlib(tmp_path, tmp_path / "log")
    assert list((lib / "__pycache__").glob(f"mod.{sys.implementation.cache_tag}.pyc"))
