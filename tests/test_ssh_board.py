"""The ssh target end to end: real ssh into a QEMU guest standing in for a board (slow).

The stand-in (``conformance.qemu.ssh_standin``) runs the suite's kernel with
sshd on 127.0.0.1:<port> and no probe loaded.  Over ssh the remote target
streams the agent into the guest's own python3, pushes the probe built for its
kernel, runs kernel-side operations, survives a reboot in the middle, and leaves
nothing behind.  The last test runs cases through pytest with ``--target=ssh``
and ``--target=qemu`` on the same kernel and compares outcomes case by case.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.errors import GuestError, SetupError
from conformance.probe.build import build_probe_module
from conformance.qemu.kernel import KernelBuild
from conformance.qemu.ssh_standin import SshStandin
from conformance.records import Direction
from conformance.remote.board import BoardSpec, BoardTarget, module_vermagic, ssh_argv
from conformance.remote.link import PipeLink

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _ssh_options(standin: SshStandin) -> list[str]:
    return ["StrictHostKeyChecking=yes", f"UserKnownHostsFile={standin.known_hosts}",
            "LogLevel=ERROR"]


@pytest.fixture(scope="module")
def probe_ko(kernel_build: KernelBuild) -> Path:
    return build_probe_module(kernel_build.kdir)


def _connect(standin: SshStandin, tmp_path: Path, probe: Path | None) -> BoardTarget:
    argv = ssh_argv(BoardSpec.parse(standin.board), identity=standin.identity,
                    options=_ssh_options(standin))
    link = PipeLink(argv, tmp_path / "board-console.log", description={"board": standin.board})
    target = BoardTarget(link, probe_ko=probe, op_timeout=60, ready_timeout=240)
    target.start()
    return target


def _state(standin: SshStandin) -> str:
    """What a run could leave behind: modules, files in the writable places, processes."""
    return standin.run("cut -d' ' -f1 /proc/modules | sort; ls -a /tmp /run /root; "
                       "ps -eo comm= 2>/dev/null | grep -c python || true").stdout


def test_the_board_runs_real_kernel_code_with_the_pushed_probe(
    ssh_standin: SshStandin, probe_ko: Path, tmp_path: Path, kernel_build: KernelBuild
) -> None:
    before = _state(ssh_standin)
    assert "dmabuf_probe" not in before
    assert module_vermagic(probe_ko.read_bytes()).split()[0] == kernel_build.release
    target = _connect(ssh_standin, tmp_path, probe_ko)
    try:
        info = target.info()
        assert info.target == "ssh" and info.kernel == kernel_build.release
        assert info.extra["board"] == ssh_standin.board and info.probe_loaded
        names = {e.name for e in target.exporters()}
        assert {"heap:system", "heap:reserved", "udmabuf", "vgem"} <= names
        device = next(d.name for d in target.devices() if not d.coherent)
        buf = target.allocate("heap:system", 3 * 4096)
        att = target.attach(buf, device)
        segments = target.map_attachment(att, Direction.BIDIRECTIONAL)
        assert sum(s.length for s in segments) == 3 * 4096
        target.device_write(att, 0, b"from the device")
        target.unmap_attachment(att, Direction.BIDIRECTIONAL)
        mapping = target.mmap(buf)
        assert target.cpu_read(mapping, 0, 15) == b"from the device"
        assert target.dma_events()  # the probe's event log, read on the board
        target.close_all()
        assert target.health().warnings == 0
        assert "dmabuf_probe" in ssh_standin.run("cat /proc/modules").stdout
        # the board's kernel log reaches the host as its console
        ssh_standin.run("echo dmabuf-conformance-kmsg-marker > /dev/kmsg")
        target.live_buffers()  # a round trip: the agent's stderr had time to be read
        deadline = time.monotonic() + 10
        while "dmabuf-conformance-kmsg-marker" not in target.console_excerpt():
            assert time.monotonic() < deadline, target.console_excerpt()[-2000:]
            time.sleep(0.2)
    finally:
        target.stop()
    # the probe is unloaded, no file and no process is left
    assert _state(ssh_standin) == before


def test_a_board_reboot_in_the_middle_of_a_run(
    ssh_standin: SshStandin, probe_ko: Path, tmp_path: Path
) -> None:
    target = _connect(ssh_standin, tmp_path, probe_ko)
    try:
        target.allocate("heap:system", 4096)
        with pytest.raises(GuestError) as err:
            target.crash("panic", timeout=60)  # the kernel panics; panic=-1 reboots it
        assert "board" in str(err.value)
        ssh_standin.reboot_wait()
        target.restart()  # reconnects to the new boot and loads the probe again
        assert target.pipe.connects == 2
        assert target.info().probe_loaded and target.devices()
        assert target.buffer_size(target.allocate("heap:system", 8192)) == 8192
    finally:
        target.stop()


def test_a_probe_for_another_kernel_is_refused_before_it_is_sent(
    ssh_standin: SshStandin, tmp_path: Path
) -> None:
    fake = tmp_path / "old.ko"
    fake.write_bytes(b"\x7fELF" + b"\0" * 60
                     + b"\0name=dmabuf_probe\0vermagic=5.10.0 SMP mod_unload \0")
    with pytest.raises(SetupError, match=r"built for 5\.10\.0, the board runs 6\.1"):
        _connect(ssh_standin, tmp_path, fake)


def _outcomes(tmp_path: Path, *args: str) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases", "-p", "no:cacheprovider",
         f"--reports-dir={tmp_path}", "-q", "--exporter", "heap:system",
         "-m", "sync or negative_kmap_cnt or attach_order_cmo", *args],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "conformance-summary.json").read_text())
    return summary["exporters"]["heap:system"]


def test_ssh_and_qemu_targets_agree_case_by_case(
    ssh_standin: SshStandin, probe_ko: Path, tmp_path: Path
) -> None:
    over_ssh = _outcomes(tmp_path / "ssh", "--target=ssh", "--board", ssh_standin.board,
                         "--ssh-identity", str(ssh_standin.identity),
                         *[a for o in _ssh_options(ssh_standin) for a in ("--ssh-option", o)],
                         "--probe-ko", str(probe_ko))
    in_qemu = _outcomes(tmp_path / "qemu", "--target=qemu")
    assert over_ssh and over_ssh == in_qemu
    assert "passed" in over_ssh.values()
