"""PID 1 of a guest that stands in for a board: an ssh server and nothing else.

qemu/guest/init execs this module in its ``sshd`` mode
(``dmabuf_conformance.mode=sshd``), after mounting /proc, /sys, /dev, debugfs
and tmpfs on /run and /tmp over the host's read-only root.  The kernel has
already configured the NIC from ``ip=`` (IP_PNP); QEMU's user network forwards
a host port to the guest's port 22 (conformance/qemu/ssh_standin.py).

What a board's ssh server needs and a read-only borrowed root lacks:

* a writable home for root with ``~/.ssh/authorized_keys``: dropbear reads the
  home from getpwnam("root"), so a copy of /etc/passwd with root's home moved
  to a tmpfs directory is bind-mounted over /etc/passwd.  The host's /root is
  neither written nor needed (it may have no .ssh to mount over);
* a host key: the stand-in passes one in (so it stays the same across guest
  reboots and the host can check it), or one is made here at boot;
* /dev/pts, for ``ssh -t``.

The key files come from the host directory named by ``dmabuf_conformance.ssh_dir``
(the guest sees the host's file system, so the host needs no other channel).
Stdlib only: this runs on the host's interpreter before anything is set up.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

DROPBEAR = "/usr/sbin/dropbear"
DROPBEARKEY = "/usr/bin/dropbearkey"
STATE = Path("/run/sshd")
HOME = STATE / "root"  # root's home as dropbear sees it (tmpfs)
HOST_KEY = STATE / "dropbear_ed25519_host_key"
PORT = 22
# The host's wait loop reads the console for these: it tries ssh only once dropbear
# listens in the boot it waits for, and fails at once instead of timing out.
READY_MARK = "[sshd-guest] dropbear listening on port"
FATAL_MARK = "[sshd-guest] cannot start sshd:"

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def log(msg: str) -> None:
    # stderr is /dev/console (ttyS0), which the host captures in console.log
    print(f"[sshd-guest] {msg}", file=sys.stderr, flush=True)


def uptime() -> str:
    return Path("/proc/uptime").read_text().split()[0]


def cmdline_params(text: str) -> dict[str, str]:
    """The ``dmabuf_conformance.<key>=<value>`` arguments of a kernel command line."""
    params = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep and key.startswith("dmabuf_conformance."):
            params[key[len("dmabuf_conformance."):]] = value
    return params


def with_root_home(passwd: str, home: str) -> str:
    """``passwd`` (the text of /etc/passwd) with root's home directory replaced by ``home``."""
    lines = []
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) == 7 and fields[0] == "root":
            fields[5] = home
            line = ":".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)


def bring_up_loopback() -> None:
    # ip= configures eth0 (and usually lo as well); setting IFF_UP again is harmless,
    # and the kernel gives lo 127.0.0.1 when it comes up.  No iproute2 needed.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(s, _SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | _IFF_UP))


def mount_devpts() -> None:
    pts = Path("/dev/pts")
    pts.mkdir(exist_ok=True)
    if not os.path.ismount(pts):
        run("mount", "-t", "devpts", "-o", "gid=5,mode=620,ptmxmode=666", "devpts", str(pts))


def set_up_root_home(ssh_dir: Optional[Path]) -> None:
    # dropbear refuses keys when the home, ~/.ssh or the file is group/world writable
    # (and /run is a mode-1777 tmpfs), so every level is made private.
    ssh = HOME / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    HOME.chmod(0o700)
    ssh.chmod(0o700)
    keys = ssh / "authorized_keys"
    source = ssh_dir / "authorized_keys" if ssh_dir else None
    if source is not None and source.is_file():
        shutil.copyfile(source, keys)
        keys.chmod(0o600)
        log(f"authorized keys from {source}")
    else:
        log("no authorized_keys given (dmabuf_conformance.ssh_dir): nobody can log in")
    passwd = STATE / "passwd"
    passwd.write_text(with_root_home(Path("/etc/passwd").read_text(), str(HOME)))
    passwd.chmod(0o644)
    run("mount", "--bind", str(passwd), "/etc/passwd")


def set_up_host_key(ssh_dir: Optional[Path]) -> None:
    given = ssh_dir / "dropbear_ed25519_host_key" if ssh_dir else None
    if given is not None and given.is_file():
        shutil.copyfile(given, HOST_KEY)
        HOST_KEY.chmod(0o600)
        log(f"host key from {given}")
    else:
        run(DROPBEARKEY, "-t", "ed25519", "-f", str(HOST_KEY))
        log("host key made at boot")


def dropbear_argv() -> list[str]:
    return [DROPBEAR,
            "-F", "-E",  # foreground (this process reaps it), log to the console
            "-s",  # keys only: the stand-in's root has no password
            "-m",  # no motd
            "-j", "-k",  # no port forwarding: the board serves the agent's pipe and nothing else
            "-r", str(HOST_KEY),
            "-p", str(PORT),
            "-P", str(STATE / "dropbear.pid")]


def set_up(params: dict[str, str]) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    ssh_dir = Path(params["ssh_dir"]) if params.get("ssh_dir") else None
    bring_up_loopback()
    mount_devpts()
    set_up_root_home(ssh_dir)
    set_up_host_key(ssh_dir)
    if not os.access(DROPBEAR, os.X_OK):
        raise RuntimeError(f"{DROPBEAR} is missing on this root (package dropbear-bin)")
    for tool in ("/sbin/insmod", "/sbin/rmmod"):
        if not os.access(tool, os.X_OK):
            # the remote target loads and unloads the probe module through them
            log(f"warning: {tool} is missing on this root (package kmod)")


def serve() -> None:
    """Run dropbear and reap every child, as PID 1 must; restart dropbear if it dies."""
    delay = 1.0
    pid = os.spawnv(os.P_NOWAIT, DROPBEAR, dropbear_argv())
    started = time.monotonic()
    print(f"{READY_MARK} {PORT} (pid {pid})", file=sys.stderr, flush=True)
    while True:
        try:
            dead, status = os.waitpid(-1, 0)
        except ChildProcessError:  # no child left at all; cannot happen while dropbear runs
            dead, status = pid, 0
        if dead != pid:
            continue  # an orphan reparented to PID 1 (e.g. a session's background job)
        log(f"dropbear exited ({status:#x}); restarting it")
        # A dropbear that dies at once (bad key, port in use) must not flood the console.
        delay = 1.0 if time.monotonic() - started > 30 else min(delay * 2, 30.0)
        time.sleep(delay)
        pid = os.spawnv(os.P_NOWAIT, DROPBEAR, dropbear_argv())
        started = time.monotonic()


def idle() -> None:
    # PID 1 must not exit (the kernel would panic and, with panic=-1, reboot into the
    # same failure); stay and reap, so the host reads the reason on the console.
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(60)


def main() -> None:
    try:
        log(f"setting up sshd (uptime {uptime()} s)")
        set_up(cmdline_params(Path("/proc/cmdline").read_text()))
        log(f"hostname {socket.gethostname()}, uptime {uptime()} s")
    except Exception:  # noqa: BLE001 - PID 1: report anything and stay up
        print(f"{FATAL_MARK}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        idle()
    serve()


if __name__ == "__main__":
    main()
