"""The QEMU argv and kernel command line, built without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.errors import SetupError
from conformance.qemu.boot import Guest, GuestConfig
from conformance.qemu.kernel import KernelBuild


def _guest(tmp_path: Path, **kw: object) -> Guest:
    image = tmp_path / "bzImage"
    image.write_bytes(b"\0")
    build = KernelBuild(image=image, kdir=tmp_path, release="6.1.0", config_hash="x")
    return Guest(GuestConfig(kernel=build, **kw), workdir=tmp_path)  # type: ignore[arg-type]


def test_command_line_has_the_decided_shape(tmp_path: Path) -> None:
    g = _guest(tmp_path, extra_cmdline=("swiotlb=force",),
               probe_modules=(Path("/r/qemu/probe/dmabuf_probe.ko"),))
    argv = g.command_line()
    assert argv[0] == "qemu-system-x86_64"
    for flag in ("-nodefaults", "-no-reboot", "-nographic"):
        assert flag in argv
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert "mount_tag=root" in argv[argv.index("-device") + 1]
    assert any("readonly=on" in a and "multidevs=remap" in a for a in argv)
    assert "virtserialport,chardev=agent,name=conformance" in argv
    cmdline = argv[argv.index("-append") + 1].split()
    for want in ("root=root", "rootfstype=9p", "panic=-1", "cma=32M", "swiotlb=force", "ro",
                 "dmabuf_conformance.probe=/r/qemu/probe/dmabuf_probe.ko"):
        assert want in cmdline
    assert not any(a.startswith("root=/dev/") for a in cmdline)


def test_shell_mode_uses_the_terminal(tmp_path: Path) -> None:
    argv = _guest(tmp_path).command_line("shell")
    assert "mon:stdio" in argv
    assert "dmabuf_conformance.mode=shell" in argv[argv.index("-append") + 1]


def test_bad_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="white space"):
        _guest(tmp_path, python="/opt/my python/bin/python3").config.check()
    with pytest.raises(SetupError, match="interpreter /nope/python does not exist"):
        _guest(tmp_path, python="/nope/python").config.check()
