"""PID 1 of the conformance QEMU guest: the mounts, the probe module, then the agent.

The kernel starts the interpreter itself as init (``init=<python>``, and after
``--`` on its command line ``-S -u -B <repo>/qemu/guest/init``), and this module
does what a shell init script used to: every command of that script was an
``exec`` of a host binary over 9p under TCG, tens of milliseconds each, and the
agent then paid a second interpreter start.  Here the mounts are ``mount(2)``
calls, the probe is handed to ``init_module(2)`` (``conformance.guest.modules``,
the same loader a board's agent uses), and the agent runs in this process.

The root file system is the host's own ``/``, read-only over 9p (or, for a
guest of another architecture, its own Debian root with the host's ``/`` at
``/host``: ``conformance/qemu/rootfs.py`` mounts that before it runs us);
everything that must be writable is a tmpfs.  Settings come from the kernel
command line as ``dmabuf_conformance.<key>=<value>`` (dotted, so the kernel
keeps them out of init's environment and argv).

Stdlib + ``conformance`` only, Python 3.7 or newer: the arm64 root has Debian's
python3 and nothing else.  A failure before the agent serves is printed on the
console and ends PID 1, so the kernel panics and QEMU exits (``panic=-1``,
``-no-reboot``): the host reports the console instead of waiting for a guest
that will never answer.
"""

from __future__ import annotations

import ctypes
import os
import sys

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Dict, List, Optional

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SETTING_PREFIX = "dmabuf_conformance."
# The host's /tmp stays reachable under its own paths (a CI clone, or the venv's
# interpreter, may live there): it is kept here and its entries are linked into the
# guest's own writable /tmp.
HOST_TMP = "/run/host-tmp"
MODES = ("agent", "sshd", "shell")

_MS_BIND = 0x1000
_libc = ctypes.CDLL(None, use_errno=True)


def say(msg: str) -> None:
    # PID 1's stderr is /dev/console: the host keeps it as the guest's console log.
    print(f"[init] {msg}", file=sys.stderr, flush=True)


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                   ctypes.c_ulong(flags), data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount -t {fstype or 'bind'} {source} {target}: {os.strerror(err)}")


def mount_system() -> None:
    """proc, sys, devtmpfs, a writable /run and /tmp, debugfs."""
    mount("proc", "/proc", "proc")
    mount("sysfs", "/sys", "sysfs")
    try:
        mount("devtmpfs", "/dev", "devtmpfs")
    except OSError:
        pass  # CONFIG_DEVTMPFS_MOUNT has mounted it already
    mount("tmpfs", "/run", "tmpfs")
    os.mkdir(HOST_TMP)
    mount("/tmp", HOST_TMP, "", _MS_BIND)
    mount("tmpfs", "/tmp", "tmpfs", data="mode=1777")
    for name in os.listdir(HOST_TMP):
        os.symlink(f"{HOST_TMP}/{name}", f"/tmp/{name}")
    mount("debugfs", "/sys/kernel/debug", "debugfs")


def settings(cmdline: str) -> Dict[str, str]:
    """``dmabuf_conformance.<key>=<value>`` of the kernel command line, and ``console``."""
    out: Dict[str, str] = {}
    for word in cmdline.split():
        key, eq, value = word.partition("=")
        if not eq:
            continue
        if key.startswith(SETTING_PREFIX):
            out[key[len(SETTING_PREFIX):]] = value
        elif key == "console":
            out["console"] = value  # ttyS0 on x86_64, ttyAMA0 on arm64's virt board
    return out


def load_probes(paths: List[str]) -> None:
    """Load each probe module; one that does not load leaves its cases to skip, and says so."""
    from conformance.guest.modules import Modules

    modules = Modules()
    for path in paths:
        try:
            with open(path, "rb") as f:
                modules.load(f.read())
        except Exception as e:  # noqa: BLE001 - the run goes on without it
            say(f"could not load probe module {path}; kernel-side cases will skip ({e})")
        else:
            say(f"loaded {path}")


def child_environment(repo: str) -> None:
    """What the agent's children (the C bench loop, fork cases) inherit."""
    os.environ.update({"PATH": PATH, "HOME": "/tmp", "PYTHONPATH": repo,
                       "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"})
    os.chdir("/tmp")


def interactive_shell(console: str) -> None:
    """``boot --shell``: a shell on the console with job control, then reboot (QEMU exits)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            # The first tty a session leader opens becomes its controlling terminal.
            fd = os.open(f"/dev/{console}", os.O_RDWR)
            for n in (0, 1, 2):
                os.dup2(fd, n)
            os.execv("/bin/sh", ["sh"])
        finally:
            os._exit(127)
    os.waitpid(pid, 0)
    with open("/proc/sysrq-trigger", "w") as f:
        f.write("b")


def main(argv: Optional[List[str]] = None) -> int:
    sys.dont_write_bytecode = True  # the root is read-only; say so before any import
    mount_system()
    with open("/proc/cmdline") as f:
        conf = settings(f.read())
    # Not resolved: a repository under the host's /tmp keeps its own path (a link now).
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child_environment(repo)
    mode = conf.get("mode", "agent")
    if mode not in MODES:
        say(f"unknown dmabuf_conformance.mode={mode!r} (one of {', '.join(MODES)})")
        return 2
    if conf.get("probe"):
        load_probes(conf["probe"].split(","))
    if mode == "shell":
        say(f"interactive shell; the repository is {repo}, python is {sys.executable}")
        interactive_shell(conf.get("console", "ttyS0"))
        return 0
    if mode == "sshd":
        # A board stand-in: an ssh server, and no agent until the remote target streams one.
        from conformance.qemu import sshd_guest

        sshd_guest.main()
        return 0
    from conformance.guest import agent

    say("starting the agent in PID 1 (python " + sys.version.split()[0] + ")")
    return agent.serve_guest(conf.get("factory") or agent.DEFAULT_FACTORY)
