"""The ssh board stand-in: a QEMU guest with sshd that the remote target is tested against.

The first tests build the stand-in's command lines without booting anything;
the ``slow`` ones boot it (the ``ssh_standin`` fixture, tests/conftest.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conformance.errors import SetupError
from conformance.qemu.kernel import KernelBuild
from conformance.qemu.ssh_standin import IP_ARG, SshStandin, _SshdGuest
from conformance.qemu.sshd_guest import cmdline_params, with_root_home


def _standin(tmp_path: Path) -> SshStandin:
    image = tmp_path / "bzImage"
    image.write_bytes(b"\0")
    build = KernelBuild(image=image, kdir=tmp_path, release="6.1.0", config_hash="x")
    return SshStandin(build, workdir=tmp_path)


def test_the_guest_runs_sshd_with_a_forwarded_port(tmp_path: Path) -> None:
    standin = _standin(tmp_path)
    argv = _SshdGuest(standin.guest_config(2222), workdir=tmp_path).command_line()
    cmdline = argv[argv.index("-append") + 1].split()
    for want in ("dmabuf_conformance.mode=sshd", IP_ARG, "swiotlb=force", "cma=32M",
                 f"dmabuf_conformance.ssh_dir={tmp_path}"):
        assert want in cmdline
    assert not any(a.startswith("dmabuf_conformance.probe=") for a in cmdline)  # pushed later
    assert argv[argv.index("-nic") + 1] == \
        "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2222-:22"
    # A guest reset ends QEMU and the stand-in starts it again (faster than QEMU's own
    # reset under TCG); in_place_reset leaves the reset to QEMU.
    assert "-no-reboot" in argv
    in_place = SshStandin(standin.build, workdir=tmp_path, in_place_reset=True)
    assert "-no-reboot" not in _SshdGuest(in_place.guest_config(2222),
                                          workdir=tmp_path).command_line()


def test_ssh_argv_names_the_key_the_port_and_the_stand_ins_host_key(tmp_path: Path) -> None:
    standin = _standin(tmp_path)
    standin.port = 2222
    argv = standin.ssh_argv()
    assert argv[0] == "ssh" and argv[-1] == "root@127.0.0.1"
    assert argv[argv.index("-i") + 1] == str(tmp_path / "id_ed25519")
    assert argv[argv.index("-p") + 1] == "2222"
    assert "BatchMode=yes" in argv and "StrictHostKeyChecking=yes" in argv
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in argv
    assert standin.board == "root@127.0.0.1:2222"
    args = standin.target_args()
    assert args[:3] == ["--target=ssh", "--board", "root@127.0.0.1:2222"]
    assert args[args.index("--ssh-identity") + 1] == str(standin.identity)


def test_a_missing_tool_is_a_setup_error_naming_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ssh_standin fixture turns this into a skip that says what to install."""
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "dropbearkey" else tool)
    with pytest.raises(SetupError, match=r"dropbearkey \(dropbear-bin\)"):
        _standin(tmp_path).start()


def test_guest_side_helpers() -> None:
    assert cmdline_params("ro dmabuf_conformance.mode=sshd dmabuf_conformance.ssh_dir=/t/x "
                          "ip=1::2 quiet") == {"mode": "sshd", "ssh_dir": "/t/x"}
    passwd = "root:x:0:0:root:/root:/bin/bash\nrootless:x:1:1::/root:/bin/sh\n"
    assert with_root_home(passwd, "/run/sshd/root") == (
        "root:x:0:0:root:/run/sshd/root:/bin/bash\nrootless:x:1:1::/root:/bin/sh\n")


# -- on a booted stand-in ---------------------------------------------------------


@pytest.mark.slow
def test_ssh_reaches_the_boards_own_python(ssh_standin: SshStandin) -> None:
    print(f"boot-to-ssh: {ssh_standin.ready_s:.1f} s")
    # The remote agent runs `python3 -I`: the board's interpreter, without the repository.
    r = ssh_standin.run("python3 -I -c 'import sys; print(tuple(sys.version_info[:2]))'")
    major, minor = (int(x) for x in re.findall(r"\d+", r.stdout))
    assert (major, minor) >= (3, 7)
    assert ssh_standin.run("uname -r").stdout.startswith("6.1")
    assert ssh_standin.run("id -u").stdout.strip() == "0"


@pytest.mark.slow
def test_ssh_argv_is_a_pipe_to_the_board(ssh_standin: SshStandin) -> None:
    """What --board-cmd needs: a program streamed on stdin runs on the board."""
    r = subprocess.run([*ssh_standin.ssh_argv(), "python3", "-I", "-"], input="print(6 * 7)\n",
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "42\n"), r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("panic", [False, True], ids=["reboot", "panic"])
def test_a_reset_board_comes_back_on_ssh(ssh_standin: SshStandin, panic: bool) -> None:
    before, starts = ssh_standin.boot_id, ssh_standin.qemu_starts
    assert before
    mark = ssh_standin.guest.console.mark() if ssh_standin.guest else 0
    reset_at = time.monotonic()
    took = ssh_standin.reboot(panic=panic)
    print(f"{'panic' if panic else 'reboot'} to ssh: {took:.1f} s")
    assert ssh_standin.boot_id != before
    assert ssh_standin.qemu_starts == starts + 1  # the reset ended QEMU; the stand-in restarted it
    # A fresh kernel: it has been up no longer than since the reset was asked for.
    uptime = float(ssh_standin.run("cut -d' ' -f1 /proc/uptime").stdout)
    assert uptime <= time.monotonic() - reset_at + 1.0
    if panic:
        assert ssh_standin.guest is not None
        assert "Kernel panic - not syncing" in ssh_standin.guest.console_since(mark)
