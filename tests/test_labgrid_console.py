"""The labgrid target over a serial console: labgrid logs in, the agent is streamed.

The "board" is a login shell on a pseudo-terminal, wired to a second one that
labgrid opens as its ``RawSerialPort``, as a USB-serial adapter would be.  The
board's agent serves the reference model (``--board-agent-factory``), so what
is tested is the channel: labgrid's login over the console, the bootstrap
typed at a shell that echoes, the agent streamed, cases run and reported.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import termios
import threading
import tty
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = pytest.mark.skipif(shutil.which("labgrid-client") is None,
                                reason="no labgrid: pip install labgrid (in the test extra)")
REPO = Path(__file__).resolve().parents[1]
# A getty's loop: after a logout (the agent ends the shell it was exec'ed from), a login.
BOARD = ("while :; do printf 'dmabuf-board login: '; read user; "
         "PS1='board# ' sh -i; done")


def _wire(a: int, b: int, stop: threading.Event) -> None:
    """Copy bytes both ways between two pty masters: the serial cable."""
    while not stop.is_set():
        ready, _, _ = select.select([a, b], [], [], 0.2)
        for src in ready:
            try:
                data = os.read(src, 4096)
            except OSError:
                return
            os.write(b if src == a else a, data)


@pytest.fixture
def serial_board(tmp_path: Path) -> Iterator[str]:
    """The path of a serial port with a login shell behind it."""
    lab_master, lab_slave = os.openpty()
    board_master, board_slave = os.openpty()
    tty.setraw(lab_slave)

    def controlling_tty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    shell = subprocess.Popen(["sh", "-c", BOARD], stdin=board_slave, stdout=board_slave,
                             stderr=board_slave, start_new_session=True,
                             preexec_fn=controlling_tty, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(board_slave)
    stop = threading.Event()
    wire = threading.Thread(target=_wire, args=(lab_master, board_master, stop), daemon=True)
    wire.start()
    try:
        yield os.ttyname(lab_slave)
    finally:
        stop.set()
        shell.kill()
        shell.wait()
        wire.join(timeout=2)
        for fd in (lab_master, lab_slave, board_master):
            os.close(fd)


def test_cases_run_over_a_labgrid_serial_console(serial_board: str, tmp_path: Path) -> None:
    env = tmp_path / "console-board.yaml"
    env.write_text(
        "targets:\n"
        "  main:\n"
        "    resources:\n"
        "      RawSerialPort:\n"
        f"        port: {serial_board}\n"
        "        speed: 115200\n"
        "    drivers:\n"
        "      SerialDriver: {}\n"
        "      ShellDriver:\n"
        "        prompt: 'board# '\n"
        "        login_prompt: 'dmabuf-board login: '\n"
        "        username: root\n"
        "        login_timeout: 30\n")
    reports = tmp_path / "reports"
    cmd = [sys.executable, "-m", "pytest", "cases", "--target=labgrid", "--lg-env", str(env),
           "--board-agent-factory", "conformance.targets.model:ModelTarget",
           "--exporter", "model:reference", "-m", "attach_order_cmo",
           f"--reports-dir={reports}", "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    out = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, out
    summary = json.loads((reports / "conformance-summary.json").read_text())
    assert summary["target"] == "labgrid"
    results = summary["exporters"]["model:reference"]
    assert len(results) >= 5 and set(results.values()) == {"passed"}, results
    info = summary["target_info"]["extra"]
    assert info["labgrid_driver"] == "ShellDriver" and "labgrid_console" in info["board_command"]
