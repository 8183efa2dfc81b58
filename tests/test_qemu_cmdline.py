"""The QEMU argv and kernel command line, built without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.errors import SetupError
from conformance.qemu.boot import INIT_SCRIPT, Guest, GuestConfig
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
    # The interpreter is PID 1 and runs qemu/guest/init (the kernel passes what follows `--`).
    assert f"init={g.config.python}" in cmdline
    assert cmdline[cmdline.index("--"):] == ["--", "-S", "-u", "-B", str(INIT_SCRIPT)]


def test_the_guest_runs_the_init_of_its_configs_repository(tmp_path: Path) -> None:
    # What bench_qemu.py --ab boots: another checkout's code on the same kernel.
    other = tmp_path / "other-checkout"
    cmdline = _guest(tmp_path, repo=other).kernel_cmdline().split()
    assert cmdline[-1] == str(other / "qemu" / "guest" / "init")


def test_the_guests_memory_is_its_configs_and_too_little_is_refused(tmp_path: Path) -> None:
    argv = _guest(tmp_path, memory_mb=768).command_line()
    assert argv[argv.index("-m") + 1] == "768"
    assert _guest(tmp_path).command_line()[argv.index("-m") + 1] == "512"
    refused = r"memory \(-?\d+ MB, --qemu-memory\) must be at least 128 MB"
    for too_little in (0, -1, 127):
        with pytest.raises(SetupError, match=refused):
            _guest(tmp_path, memory_mb=too_little).config.check()


def test_shell_mode_uses_the_terminal(tmp_path: Path) -> None:
    argv = _guest(tmp_path).command_line("shell")
    assert "mon:stdio" in argv
    assert "dmabuf_conformance.mode=shell" in argv[argv.index("-append") + 1]


def test_bad_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="white space"):
        _guest(tmp_path, python="/opt/my python/bin/python3").config.check()
    with pytest.raises(SetupError, match="interpreter /nope/python does not exist"):
        _guest(tmp_path, python="/nope/python").config.check()


def _fake_image(tmp_path: Path) -> Path:
    image = tmp_path / "bzImage"
    image.write_bytes(b"\0" * 0x202 + b"HdrS" + b"\0" * 64)
    return image


def test_print_cmd_is_the_runs_guest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """boot's CLI and the pytest fixture build the guest in one place (suite_guest)."""
    from conformance.qemu import boot, suite_guest

    probe = tmp_path / "dmabuf_probe.ko"
    built_for: list[KernelBuild] = []

    def fake_build_probe(build: KernelBuild) -> tuple[Path, ...]:
        built_for.append(build)
        return (probe,)

    monkeypatch.setattr(suite_guest, "build_probe", fake_build_probe)
    image = _fake_image(tmp_path)
    assert boot.main(["--print-cmd", "--kernel", str(image), "--append", "quiet"]) == 0
    cmd = capsys.readouterr().out
    assert built_for and built_for[0].image == image
    for want in ("swiotlb=force", f"dmabuf_conformance.probe={probe}", "cma=32M", "quiet"):
        assert want in cmd
    # ...and the fixture's guest is the same one, argument for argument.
    fixture_guest = Guest(suite_guest.suite_guest_config(built_for[0], extra_append=("quiet",)),
                          workdir=tmp_path)
    fixture_append = fixture_guest.command_line()[fixture_guest.command_line().index("-append")
                                                  + 1]
    assert fixture_append in cmd.replace("'", "")
    assert boot.main(["--print-cmd", "--kernel", str(image), "--no-probe"]) == 0
    assert "dmabuf_conformance.probe=" not in capsys.readouterr().out


def test_print_cmd_builds_the_probe_for_the_cached_kernel(
        capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.qemu import boot, kernel

    builds = [b for b in kernel.cached_builds() if b.release.startswith("6.1.")]
    if not builds:
        pytest.skip("no cached 6.1 test kernel (tox -e qemu builds it)")
    b = builds[0]
    assert boot.main(["--print-cmd", "--kernel", str(b.image), "--kdir", str(b.kdir)]) == 0
    cmd = capsys.readouterr().out
    assert "swiotlb=force" in cmd
    assert f"dmabuf_conformance.probe={b.kdir}.probe/dmabuf_probe.ko" in cmd


@pytest.mark.parametrize("release, tag", [("5.10.223", "/dev/root"), ("5.13.0", "/dev/root"),
                                          ("5.14.0", "root"), ("6.1.192", "root"),
                                          ("6.12.118", "root"), ("unknown", "root")])
def test_the_9p_root_tag_follows_the_kernel_version(tmp_path: Path, release: str,
                                                    tag: str) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(b"\0")
    build = KernelBuild(image=image, kdir=tmp_path, release=release, config_hash="x")
    argv = Guest(GuestConfig(kernel=build), workdir=tmp_path).command_line()
    assert f"virtio-9p-pci,fsdev=root,mount_tag={tag}" in argv
    assert f"root={tag}" in argv[argv.index("-append") + 1].split()
