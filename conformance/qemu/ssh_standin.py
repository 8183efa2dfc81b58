"""A QEMU guest that stands in for a board reached over ssh (issue 12, section 3).

The remote target (``--target=ssh --board root@127.0.0.1:PORT``) is tested
against it::

    python -m conformance.qemu.ssh_standin     # boots one, prints the board and key, waits

The guest is the run's own (``suite_guest_config``: the same kernel, swiotlb=force,
CMA area and memory as ``--target=qemu``) with three differences:

* init's ``sshd`` mode (conformance/qemu/sshd_guest.py) runs dropbear instead
  of the agent: the remote target streams its own agent over ssh;
* no probe module is loaded at boot: the remote target pushes and loads it
  (``build_probe()`` gives the module built for this kernel);
* a guest reboot or panic brings the guest back, at the same address with the
  same keys, as a board comes back after a reset.  By default QEMU exits on the
  reset (-no-reboot) and the stand-in starts it again at once: under TCG QEMU's
  own in-place reset (``in_place_reset=True``, ``exit_on_reboot=False``) spends
  20-30 s more between SeaBIOS's "Booting from ROM" and the kernel's first line
  than a cold start does (on a loaded 2-core host, with a cold boot-to-ssh of
  16 s: reset-to-ssh 35 s in place, 14-16 s restarted).  To the remote target both
  look like a board that went away and came back; with the restart its ssh
  connection ends at once instead of hanging until ServerAlive gives up.

The network is QEMU's user network: the kernel configures eth0 from ``ip=``
(QEMU's default 10.0.2.0/24), and ``hostfwd`` forwards 127.0.0.1:PORT on the
host to the guest's port 22.  The root key and the host key are made fresh in a
temporary directory the guest reads over its 9p root; the host key is fixed for
the stand-in's life, so ssh checks it (a known_hosts file) across reboots.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

from conformance.errors import GuestError, SetupError
from conformance.qemu.arch import get_arch
from conformance.qemu.boot import DEFAULT_READY_TIMEOUT, Guest, GuestConfig
from conformance.qemu.kernel import KernelBuild, ensure_kernel
from conformance.qemu.sshd_guest import FATAL_MARK, READY_MARK
from conformance.qemu.suite_guest import build_probe, suite_guest_config

GUEST_IP = "10.0.2.15"  # QEMU user networking: guest 10.0.2.15, gateway 10.0.2.2
# ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>; "off": static, no DHCP
IP_ARG = f"ip={GUEST_IP}::10.0.2.2:255.255.255.0:dmabuf-board:eth0:off"
HOST_KEY_NAME = "dropbear_ed25519_host_key"  # the name sshd_guest looks for
TOOLS = {  # what the stand-in runs on the host, and the Debian package with it
    "ssh": "openssh-client", "ssh-keygen": "openssh-client", "dropbearkey": "dropbear-bin",
}
DROPBEAR = Path("/usr/sbin/dropbear")  # run in the guest, from the host's root
# One ssh call while waiting: ~2.5 s on a loaded 2-core host (the guest's key exchange under TCG)
_SSH_ATTEMPT_TIMEOUT = 20.0
_PORT_TRIES = 3
# A QEMU that exits this soon after it started, this many times in a row, is not a reset.
_QUICK_EXIT_S = 5.0
_QUICK_EXITS = 3


class _SshdGuest(Guest):
    """A Guest whose init runs sshd_guest instead of the agent (init's ``sshd`` mode).

    ``Guest.start`` builds its argv with ``command_line()``; only the default mode
    differs here, so agent guests are untouched.
    """

    def command_line(self, mode: str = "sshd") -> list[str]:
        return super().command_line(mode)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (QEMU binds it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_tools() -> None:
    missing = [f"{tool} ({pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if not DROPBEAR.is_file():
        missing.append(f"{DROPBEAR} (dropbear-bin)")
    if missing:
        raise SetupError("the ssh stand-in needs " + ", ".join(missing)
                         + " (qemu/setup-host.sh installs them)")


class SshStandin:
    """A booted guest with sshd at ``root@127.0.0.1:<port>``, and a key that logs in.

    ``start()`` boots it and returns once ``ssh ... true`` succeeds; ``stop()``
    ends QEMU and removes the keys.  Also a context manager.
    """

    def __init__(self, build: Optional[KernelBuild] = None, *,
                 workdir: Optional[Path] = None, console_path: Optional[Path] = None,
                 extra_append: Sequence[str] = (), name: str = "ssh-standin",
                 in_place_reset: bool = False) -> None:
        self.build = build if build is not None else ensure_kernel(None)
        self._own_workdir = workdir is None
        self.workdir = workdir if workdir is not None else Path(
            tempfile.mkdtemp(prefix="dmabuf-ssh-standin-"))
        if any(c.isspace() for c in str(self.workdir)):
            raise SetupError(f"the stand-in's directory {self.workdir} contains white space, "
                             "which the kernel command line cannot carry")
        self.console_path = console_path or self.workdir / "console.log"
        self.extra_append = tuple(extra_append)
        self.name = name
        self.in_place_reset = in_place_reset
        self.qemu_starts = 0  # QEMU processes started: 1 + the resets the stand-in restarted
        self._supervisor: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._gave_up = ""  # why the supervisor stopped restarting QEMU
        self.identity = self.workdir / "id_ed25519"  # the root key (private half)
        self.known_hosts = self.workdir / "known_hosts"
        self.port = 0
        self.guest: Optional[Guest] = None
        self.boot_id = ""  # /proc/sys/kernel/random/boot_id of the boot ssh last reached
        self._reached_mark = 0  # console offset when ssh last reached a new boot
        self.ready_s = 0.0  # boot-to-ssh time of the last start()
        self._host_key_pub = ""

    # -- what the remote target is given -------------------------------------------

    @property
    def board(self) -> str:
        """The ``--board`` value."""
        return f"root@127.0.0.1:{self.port}"

    def ssh_argv(self) -> list[str]:
        """The ssh command prefix that runs a command on the board (append the command)."""
        return ["ssh", "-F", "none",  # the user's ~/.ssh/config must not change what runs
                "-i", str(self.identity), "-p", str(self.port),
                "-o", "IdentitiesOnly=yes",  # an ssh-agent's keys would use up auth tries
                "-o", "BatchMode=yes",
                # the host key is made for the stand-in and kept across its reboots
                "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "ConnectTimeout=10",
                # a guest that reboots under a session leaves the host end of the
                # forwarded TCP connection open: notice within 15 s instead of never
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                "-o", "LogLevel=ERROR",
                "root@127.0.0.1"]

    def target_args(self) -> list[str]:
        """pytest's options for the remote target on this board (fixtures/board.py)."""
        return ["--target=ssh", "--board", self.board, "--ssh-identity", str(self.identity),
                "--ssh-option", "StrictHostKeyChecking=yes",
                "--ssh-option", f"UserKnownHostsFile={self.known_hosts}"]

    def build_probe(self) -> tuple[Path, ...]:
        """The probe module built for the stand-in's kernel, for the remote target to push."""
        return build_probe(self.build)

    def guest_config(self, port: int) -> GuestConfig:
        config = suite_guest_config(
            self.build, arch=self.build.arch,
            extra_append=(IP_ARG, f"dmabuf_conformance.ssh_dir={self.workdir}",
                          *self.extra_append),
            probe_modules=(),  # the remote target loads the probe itself
            console_path=self.console_path, name=self.name)
        return dataclasses.replace(
            config, exit_on_reboot=self.in_place_reset is False,
            extra_qemu_args=("-nic", "user,model=virtio-net-pci,"
                             f"hostfwd=tcp:127.0.0.1:{port}-:22"))

    # -- life cycle ---------------------------------------------------------------

    def alive(self) -> bool:
        """QEMU runs, or the stand-in is starting it again after a guest reset."""
        if self.guest is None or self._gave_up:
            return False
        return self.guest.alive() or (self._supervisor is not None
                                      and self._supervisor.is_alive())

    def start(self, timeout: float = DEFAULT_READY_TIMEOUT) -> float:
        """Boot the guest; return the seconds from QEMU's start to the first ssh login."""
        _check_tools()
        if self.alive():
            raise SetupError("the ssh stand-in is already running")
        self._make_keys()
        for attempt in range(1, _PORT_TRIES + 1):
            self.port = free_port()
            self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self._host_key_pub}\n")
            self.guest = _SshdGuest(self.guest_config(self.port),
                                    workdir=self.workdir / f"qemu-{self.port}")
            self.guest.workdir.mkdir(exist_ok=True)
            mark = self.guest.console.mark()
            started = time.monotonic()
            self.guest.start()
            self.qemu_starts = 1
            try:
                self._wait_ssh(time.monotonic() + timeout, mark, old_boot_id=None)
            except GuestError:
                # Another process may have taken the port between free_port() and QEMU's bind.
                if attempt < _PORT_TRIES and self._lost_port_race():
                    continue
                raise
            self.ready_s = time.monotonic() - started
            if not self.in_place_reset:
                self._stopping.clear()
                self._gave_up = ""
                self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                                    name=f"{self.name}-supervisor")
                self._supervisor.start()
            return self.ready_s
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """End QEMU and remove the keys; a directory the stand-in made goes entirely.

        Pass ``console_path`` outside it to keep the console after stop().
        """
        self._halt()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            for secret in (self.identity, self.workdir / HOST_KEY_NAME):
                secret.unlink(missing_ok=True)

    def __enter__(self) -> SshStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- on the board ---------------------------------------------------------------

    def run(self, command: str, *, timeout: float = 60.0,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the board over ssh."""
        r = subprocess.run([*self.ssh_argv(), command], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=timeout)
        if check and r.returncode != 0:
            raise GuestError(f"{command!r} on {self.board} exited {r.returncode}: "
                             f"{r.stderr.strip()}", console_log=self._console_tail())
        return r

    def reboot(self, *, panic: bool = False,
               timeout: float = DEFAULT_READY_TIMEOUT) -> float:
        """Reset the board (``panic``: crash its kernel instead) and wait until ssh is back."""
        # Detached and delayed, so this ssh session ends before the kernel goes away.
        key = "c" if panic else "b"
        self.run(f"(sleep 1; echo {key} > /proc/sysrq-trigger) </dev/null >/dev/null 2>&1 &")
        return self.reboot_wait(timeout)

    def reboot_wait(self, timeout: float = DEFAULT_READY_TIMEOUT) -> float:
        """Wait until ssh reaches a boot other than the last one seen; return the seconds.

        For a reboot something else caused (the remote target under test, a panic),
        before or after this call: the console since ssh last reached a boot tells.
        """
        assert self.guest is not None, "start() first"
        started = time.monotonic()
        self._wait_ssh(started + timeout, self._reached_mark, old_boot_id=self.boot_id)
        return time.monotonic() - started

    # -- internals ----------------------------------------------------------------

    def _make_keys(self) -> None:
        for old in (self.identity, self.identity.with_suffix(".pub"),
                    self.workdir / HOST_KEY_NAME):
            old.unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        "dmabuf-conformance-standin", "-f", str(self.identity)],
                       check=True, capture_output=True)
        shutil.copyfile(self.identity.with_suffix(".pub"), self.workdir / "authorized_keys")
        host_key = self.workdir / HOST_KEY_NAME
        subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(host_key)],
                       check=True, capture_output=True)
        host_key.chmod(0o600)
        out = subprocess.run(["dropbearkey", "-y", "-f", str(host_key)], check=True,
                             capture_output=True, text=True).stdout
        pubs = [line.split()[:2] for line in out.splitlines() if line.startswith("ssh-ed25519 ")]
        if not pubs:
            raise SetupError(f"dropbearkey -y printed no ssh-ed25519 public key:\n{out}")
        self._host_key_pub = " ".join(pubs[0])

    def _wait_ssh(self, deadline: float, mark: int, old_boot_id: Optional[str]) -> None:
        """Poll ``ssh cat boot_id`` until it answers with a boot id other than ``old_boot_id``.

        ssh is tried only once the console since ``mark`` shows dropbear listening: an
        attempt that connects while the guest resets can hang in the key exchange (no
        ConnectTimeout or ServerAlive covers that) and would stall the wait.
        """
        assert self.guest is not None
        last = "dropbear not listening yet"
        while True:
            if not self.alive():
                raise GuestError(f"QEMU exited before ssh to {self.board} answered: "
                                 f"{self._gave_up or last} "
                                 f"(console: {self.console_path})",
                                 console_log=self.guest.failure_excerpt(mark))
            console = self.guest.console_since(mark)
            if FATAL_MARK in console:
                self._halt()
                raise GuestError(f"the stand-in's sshd did not start (console: "
                                 f"{self.console_path})",
                                 console_log=console.split(FATAL_MARK, 1)[1].strip())
            if READY_MARK not in console:
                boot_id = ""
            else:
                boot_id, last = self._boot_id_over_ssh()
            if boot_id and boot_id != old_boot_id:
                self.boot_id = boot_id
                self._reached_mark = self.guest.console.mark()
                return
            if boot_id:
                last = "ssh still reaches the boot before the reboot"
            if time.monotonic() > deadline:
                excerpt = self.guest.failure_excerpt(mark)
                self._halt()
                raise GuestError(f"ssh to {self.board} did not answer in time: {last} "
                                 f"(console: {self.console_path})", console_log=excerpt)
            time.sleep(0.5 if boot_id or last.startswith("ssh") else 0.2)

    def _boot_id_over_ssh(self) -> tuple[str, str]:
        """The board's boot id ("" if ssh failed) and what the attempt said."""
        try:
            r = subprocess.run([*self.ssh_argv(), "cat /proc/sys/kernel/random/boot_id"],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL,
                               timeout=_SSH_ATTEMPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            return "", f"ssh did not finish within {_SSH_ATTEMPT_TIMEOUT:g} s"
        if r.returncode != 0:
            return "", f"ssh exited {r.returncode}: {r.stderr.strip()}"
        return r.stdout.strip(), "ssh answered"

    def _halt(self) -> None:
        """End QEMU for good: the supervisor first, so it does not start it again."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        if self.guest is not None:
            self.guest.stop()

    def _supervise(self) -> None:
        """Start QEMU again whenever it exits (a guest reset with -no-reboot), until stop()."""
        assert self.guest is not None
        guest, quick = self.guest, 0
        started = time.monotonic()
        while not self._stopping.wait(0.1):
            if guest.alive():
                continue
            quick = quick + 1 if time.monotonic() - started < _QUICK_EXIT_S else 0
            if quick >= _QUICK_EXITS:
                self._gave_up = (f"QEMU exited {quick} times within {_QUICK_EXIT_S:g} s of "
                                 f"starting (see {guest.workdir / 'qemu.log'})")
                return
            guest.stop()  # reaps the old QEMU and closes its agent socket
            try:
                guest.start()  # same port, keys and console file
            except Exception as e:  # noqa: BLE001 - reported by alive() and the waits
                self._gave_up = f"starting QEMU again after a guest reset failed: {e}"
                return
            self.qemu_starts += 1
            started = time.monotonic()

    def _lost_port_race(self) -> bool:
        assert self.guest is not None
        log = self.guest.workdir / "qemu.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "host forwarding" in text or "hostfwd" in text

    def _console_tail(self) -> str:
        if self.guest is None:
            return ""
        return self.guest.console.tail()


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.qemu.ssh_standin",
                                 description="boot a QEMU guest that stands in for an ssh board")
    ap.add_argument("--kernel-src", type=Path, default=None)
    ap.add_argument("--kernel", type=Path, default=None, help="a prebuilt kernel image")
    ap.add_argument("--kdir", type=Path, default=None)
    ap.add_argument("--append", action="append", default=[],
                    help="extra kernel argument (as pytest's --qemu-append)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_READY_TIMEOUT,
                    help=f"seconds to wait for ssh (default {DEFAULT_READY_TIMEOUT:g})")
    ap.add_argument("--in-place-reset", action="store_true",
                    help="let QEMU reset the guest in place on a reboot (about 30 s slower "
                         "under TCG) instead of starting QEMU again")
    args = ap.parse_args(argv)
    try:
        build = ensure_kernel(args.kernel_src, kernel=args.kernel, kdir=args.kdir)
        standin = SshStandin(build, extra_append=args.append,
                             in_place_reset=args.in_place_reset)
        print(f"booting {build.release} ({get_arch(build.arch).qemu_binary}); "
              f"console: {standin.console_path}", file=sys.stderr, flush=True)
        took = standin.start(args.timeout)
    except (SetupError, GuestError) as e:
        print(f"error: {e}", file=sys.stderr)
        if isinstance(e, GuestError) and e.console_log:
            print(e.console_log, file=sys.stderr)
        return 1
    try:
        probe = [a for p in standin.build_probe()[:1] for a in ("--probe-ko", str(p))]
        print(f"ssh ready after {took:.1f} s\n"
              f"board:    {standin.board}\n"
              f"identity: {standin.identity}  (host key: {standin.known_hosts})\n"
              f"ssh:      {shlex.join(standin.ssh_argv())}\n"
              f"run:      {shlex.join(['pytest', 'cases', *standin.target_args(), *probe])}\n"
              "Ctrl-C stops the guest and removes the keys.", flush=True)
        while standin.alive():
            time.sleep(1)
        print("the guest exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        standin.stop()


if __name__ == "__main__":
    sys.exit(main())
