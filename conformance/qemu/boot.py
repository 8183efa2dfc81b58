"""Boot the test kernel in QEMU with the host's root file system and talk to the agent.

A guest of the host's own architecture mounts the host's ``/`` as its root
over 9p and runs the host's interpreter.  A guest of another architecture
(aarch64 on an x86_64 host) gets its own Debian root (``GuestConfig.root``,
``conformance/qemu/rootfs.py``) and sees the host's ``/`` at ``/host`` through
a second 9p share: the repository, the probe module and ``qemu/guest/init``
are the host's, their paths prefixed with ``/host``.

``Guest.command_line()`` builds the QEMU argv without starting anything, so a
person can print it and run the same guest by hand::

    python -m conformance.qemu.boot --print-cmd     # the argv, shell-quoted
    python -m conformance.qemu.boot --shell         # an interactive guest on this terminal

Both give the run's guest (``conformance.qemu.suite_guest``): the same kernel,
kernel arguments and probe module as ``pytest cases --target=qemu`` with the
same ``--kernel-src``/``--kernel``/``--qemu-append`` (``--append`` here).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from conformance.errors import GuestError, SetupError
from conformance.guest import protocol
from conformance.qemu.arch import get_arch
from conformance.qemu.channel import Channel, ChannelClosed, ChannelTimeout
from conformance.qemu.console import ConsoleLog, parse_console
from conformance.qemu.kernel import REPO_ROOT, KernelBuild, ensure_kernel
from conformance.qemu.rootfs import HOST_MOUNT, HOST_TAG, INIT_PATH, GuestRoot, _inside
from conformance.targets.agent import DEFAULT_OP_TIMEOUT, DEFAULT_READY_TIMEOUT  # noqa: F401

# PID 1, inside the GuestConfig's repository (the one whose code the guest runs).
INIT_IN_REPO = Path("qemu") / "guest" / "init"
INIT_SCRIPT = REPO_ROOT / INIT_IN_REPO
# The interpreter's flags as PID 1: no site (the agent is stdlib + the repository, and
# site's scan of site-packages is many 9p lookups), unbuffered, no bytecode writes
# (the root is read-only).
INIT_ARGS = ("-S", "-u", "-B")
# 512 MB, not 1 GiB: the cases that cycle or exhaust memory take time in proportion to
# it (LEAK-001 cycles twice the memory; ALLOC-009 drains heap:system until the OOM
# killer).  Measured on the whole suite (`pytest cases --target=qemu -n 2`, both sizes,
# same code): the same outcome for all 936 cases, 200 s against 234 s.  The boot itself
# did not get measurably faster.
DEFAULT_MEMORY_MB = 512
# Below this the guest cannot hold its 32 MB CMA area, the swiotlb bounce buffers and
# the interpreter (128 MB boots to the agent, measured).
MIN_MEMORY_MB = 128


def root_tag(release: str) -> str:
    """The 9p mount tag the kernel of ``release`` mounts as its root.

    Before 5.14, init/do_mounts.c mounts a non-NFS root only through
    ``mount_block_root("/dev/root", ...)``, so 9p looks for the tag "/dev/root"
    whatever root= says.  From 5.14, ``mount_nodev_root`` uses root= with "/dev/"
    stripped, so "/dev/root" would look for "root"; the tag is "root".  A
    release that does not parse (a prebuilt image without --kdir) is taken as new.
    """
    m = re.match(r"(\d+)\.(\d+)", release)
    if m and (int(m.group(1)), int(m.group(2))) < (5, 14):
        return "/dev/root"
    return "root"


@functools.cache
def precompile(repo: Path) -> None:
    """Byte-compile the package before a guest imports it (once per process).

    The guest cannot write bytecode (a read-only root, ``-B``): a module the host
    never imported (the guest's init, the agent, the local target) would be compiled
    from source at every boot, under emulation.  The scan of up-to-date files
    (0.14 s) is not repeated when a guest restarts after a case lost it; a
    read-only checkout is left as it is.
    """
    import compileall

    try:
        compileall.compile_dir(str(repo / "conformance"), quiet=2)
    except OSError:
        pass


@dataclass
class GuestConfig:
    kernel: KernelBuild
    arch: str = "x86_64"
    memory_mb: int = DEFAULT_MEMORY_MB
    smp: int = 2
    cma: str = "32M"  # a CMA area, so the CMA heap ("reserved") appears
    extra_cmdline: tuple[str, ...] = ()  # e.g. ("swiotlb=force",) if the probe asks
    probe_modules: tuple[Path, ...] = ()
    python: str = sys.executable  # the host's own interpreter, seen over 9p
    repo: Path = REPO_ROOT
    console_path: Optional[Path] = None  # default: in the guest's scratch dir
    target_factory: str = ""  # module:callable for the agent; default LocalTarget
    name: str = "guest"
    # More QEMU arguments, e.g. a NIC with hostfwd for a guest that stands in for a board
    extra_qemu_args: tuple[str, ...] = ()
    # False: a guest reboot (panic=-1) restarts it instead of ending QEMU, as a board does
    exit_on_reboot: bool = True
    # The guest's own root (a foreign architecture); None: the host's / is the root.
    # With it, ``python`` is a path inside that root (``GuestRoot.python``).
    root: Optional[GuestRoot] = None

    def host_path(self, path: object) -> str:
        """A host path as the guest sees it: itself, or under /host with a root of its own."""
        return f"{HOST_MOUNT}{path}" if self.root is not None else str(path)

    def check(self) -> None:
        if self.memory_mb < MIN_MEMORY_MB:
            raise SetupError(f"the guest's memory ({self.memory_mb} MB, --qemu-memory) must be "
                             f"at least {MIN_MEMORY_MB} MB")
        for what, value in (("python", self.python), ("repo", str(self.repo)),
                            *(("probe module", str(p)) for p in self.probe_modules)):
            if any(c.isspace() for c in value):
                raise SetupError(f"the guest {what} path {value!r} contains white space, "
                                 "which the kernel command line cannot carry")
        if self.root is not None:
            if not self.root.path.is_dir():
                raise SetupError(f"the guest root {self.root.path} does not exist")
            # The interpreter is the root's (an arm64 python3), looked up inside that root.
            if not _inside(self.root.path, self.python.lstrip("/")).exists():
                raise SetupError(f"the guest interpreter {self.python} does not exist in "
                                 f"the guest root {self.root.path}")
        elif not Path(self.python).is_file():
            raise SetupError(f"the guest interpreter {self.python} does not exist")
        if not self.kernel.image.is_file():
            raise SetupError(f"kernel image {self.kernel.image} does not exist")


@dataclass
class Guest:
    """One QEMU guest running the agent; restartable."""

    config: GuestConfig
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dmabuf-qemu-")))
    _proc: Optional[subprocess.Popen[bytes]] = None
    _channel: Optional[Channel] = None
    ready_info: dict[str, Any] = field(default_factory=dict)
    # One request at a time: the channel is request/reply and cases may call
    # the target from many threads (STRESS-002).
    _call_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    boots: int = 0
    last_boot_s: float = 0.0

    def __post_init__(self) -> None:
        self.console = ConsoleLog(self.config.console_path or self.workdir / "console.log")
        self.console.path.parent.mkdir(parents=True, exist_ok=True)

    health_from_console = True  # the serial console file is written as the kernel prints

    @property
    def name(self) -> str:
        return self.config.name

    def describe(self) -> dict[str, str]:
        """The booted kernel, for ``TargetInfo.extra`` (the agent cannot know it)."""
        return {"qemu_arch": self.config.arch,
                "kernel_config_hash": self.config.kernel.config_hash,
                # sha256[:16] of the booted image: names the exact kernel judged
                "kernel_build": self.config.kernel.image_hash}

    @property
    def socket_path(self) -> Path:
        return self.workdir / "agent.sock"

    # -- the command line ---------------------------------------------------------

    def kernel_cmdline(self, mode: str = "agent") -> str:
        arch = get_arch(self.config.arch)
        c = self.config
        parts = [
            f"console={arch.console}",
            "loglevel=5",  # KERN_WARNING and worse reach the console: WARN/BUG/DMA-API lines
            "panic=-1",  # panic -> reboot -> QEMU exits (-no-reboot)
            "oops=panic",  # an oops in the agent's syscall would otherwise leave a zombie guest
            *arch.kernel_args,  # x86_64: tsc=reliable, both: random.trust_cpu=on
            f"root={root_tag(c.kernel.release)}",  # the 9p mount tag (root_tag says why)
            "rootfstype=9p",
            "rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose",
            "ro",
            # The interpreter is init (qemu/guest/init says why).  Own root: its PID 1
            # mounts the host share first, then runs what follows `--`.
            f"init={INIT_PATH if c.root is not None else c.python}",
            f"dmabuf_conformance.mode={mode}",
        ]
        if c.cma:
            parts.append(f"cma={c.cma}")
        if c.probe_modules:
            parts.append("dmabuf_conformance.probe=" + ",".join(c.host_path(p)
                                                                for p in c.probe_modules))
        if c.target_factory:
            parts.append(f"dmabuf_conformance.factory={c.target_factory}")
        parts += list(c.extra_cmdline)
        # Last: the kernel hands everything after `--` to init as its arguments.
        parts += ["--", *((c.python,) if c.root is not None else ()), *INIT_ARGS,
                  c.host_path(c.repo / INIT_IN_REPO)]
        return " ".join(parts)

    def command_line(self, mode: str = "agent") -> list[str]:
        arch = get_arch(self.config.arch)
        c = self.config
        argv = [
            arch.qemu_binary, *arch.machine,
            "-accel", "tcg", "-m", str(c.memory_mb), "-smp", str(c.smp),
            "-nodefaults", *(("-no-reboot",) if c.exit_on_reboot else ()), "-nographic",
            "-kernel", str(c.kernel.image),
            "-append", self.kernel_cmdline(mode),
            # multidevs=remap: / spans several host file systems; keeps inode numbers unique.
            "-fsdev", f"local,id=root,path={c.root.path if c.root is not None else '/'},"
                      "security_model=none,readonly=on,multidevs=remap",
            "-device", f"virtio-9p-pci,fsdev=root,mount_tag={root_tag(c.kernel.release)}",
        ]
        if c.root is not None:
            # The host's / as a second share: the repository, the probe and the init.
            argv += ["-fsdev", "local,id=host,path=/,security_model=none,readonly=on,"
                               "multidevs=remap",
                     "-device", f"virtio-9p-pci,fsdev=host,mount_tag={HOST_TAG}"]
        if mode == "shell":
            argv += ["-serial", "mon:stdio"]
        else:
            argv += [
                "-chardev", f"file,id=con,path={self.console.path},append=on",
                "-serial", "chardev:con",
                "-chardev", f"socket,id=agent,path={self.socket_path},server=off",
                "-device", "virtio-serial-pci",
                "-device", f"virtserialport,chardev=agent,name={protocol.PORT_NAME}",
            ]
        return argv + list(c.extra_qemu_args)

    # -- life cycle ---------------------------------------------------------------

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        self.config.check()
        if self.alive():
            raise SetupError("guest already running")
        precompile(self.config.repo)
        self._boot_mark = self.console.mark()
        self._channel = Channel(self.socket_path)
        qemu_log = (self.workdir / "qemu.log").open("ab")
        self._started_at = time.monotonic()
        try:
            self._proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL,
                                          stdout=qemu_log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        except FileNotFoundError as e:
            self._channel.close()
            raise SetupError(f"{get_arch(self.config.arch).qemu_binary} not found: install "
                             f"{get_arch(self.config.arch).apt_qemu_package} "
                             "(qemu/setup-host.sh does it)") from e
        finally:
            qemu_log.close()
        self.boots += 1

    def wait_ready(self, timeout: float = DEFAULT_READY_TIMEOUT) -> dict[str, Any]:
        assert self._channel is not None, "start() first"
        deadline = time.monotonic() + timeout
        try:
            self._channel.accept(deadline, self.alive)
            while True:
                msg = self._channel.read_message(deadline, self.alive)
                if "ready" in msg:
                    break
        except (ChannelTimeout, ChannelClosed) as e:
            excerpt = self.failure_excerpt(self._boot_mark)
            self.stop()
            raise GuestError(f"the guest did not become ready: {e} "
                             f"(console: {self.console.path})", console_log=excerpt) from None
        self.ready_info = msg["ready"]
        self.last_boot_s = time.monotonic() - self._started_at
        return self.ready_info

    def call_raw(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 timeout: float) -> dict[str, Any]:
        """One request/reply; a dead or silent guest becomes a GuestError."""
        if not self.alive() or self._channel is None:
            raise GuestError(f"the guest is not running (asked for {op})",
                             console_log=self.console.tail())
        mark = self.console.mark()
        try:
            with self._call_lock:
                return self._channel.call(op, args, kwargs, timeout, self.alive)
        except (ChannelTimeout, ChannelClosed, OSError) as e:
            # A panic may still be reaching the console file: give it a moment.
            time.sleep(0.3)
            text = self.console.since(mark)
            report = parse_console(text)
            if report.panic is not None:
                why = f"the guest kernel panicked during {op}: {report.panic}"
            elif isinstance(e, ChannelTimeout):
                why = f"the guest did not answer {op} within {timeout:g} s"
            else:
                why = f"the guest died during {op} ({e})"
            excerpt = report.excerpt or "\n".join(text.splitlines()[-40:])
            self.stop()
            raise GuestError(why, console_log=excerpt) from None

    def failure_excerpt(self, mark: int) -> str:
        text = self.console.since(mark)
        report = parse_console(text)
        qemu_log = self.workdir / "qemu.log"
        extra = ""
        if qemu_log.exists():
            extra = "\n--- qemu ---\n" + "\n".join(qemu_log.read_text(errors="replace")
                                                  .splitlines()[-10:])
        return (report.excerpt or "\n".join(text.splitlines()[-40:])) + extra

    def console_since(self, mark: int) -> str:
        return self.console.since(mark)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def cleanup(self) -> None:
        """Remove the scratch dir (socket, qemu.log) unless the console file lives there."""
        self.stop()
        if self.workdir not in self.console.path.parents:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, timeout: float = DEFAULT_READY_TIMEOUT) -> dict[str, Any]:
        self.stop()
        self.start()
        return self.wait_ready(timeout)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.qemu.boot",
                                 description="boot the conformance test guest")
    ap.add_argument("--print-cmd", action="store_true", help="print the QEMU command line")
    ap.add_argument("--shell", action="store_true", help="boot to an interactive shell")
    ap.add_argument("--kernel-src", type=Path, default=None)
    ap.add_argument("--kernel", type=Path, default=None, help="a prebuilt kernel image")
    ap.add_argument("--kdir", type=Path, default=None)
    ap.add_argument("--arch", default="x86_64")
    ap.add_argument("--page-size", default="4k", help="4k, or 16k on aarch64")
    ap.add_argument("--probe", type=Path, action="append", default=None,
                    help="insmod this module instead of the probe built for the kernel "
                         "(repeatable)")
    ap.add_argument("--no-probe", action="store_true",
                    help="boot without the probe module (a run like that is incomplete)")
    ap.add_argument("--append", action="append", default=[],
                    help="extra kernel argument (as pytest's --qemu-append)")
    ap.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, metavar="MB",
                    help="the guest's memory (as pytest's --qemu-memory)")
    args = ap.parse_args(argv)
    # Imported here: suite_guest builds on this module's GuestConfig.
    from conformance.qemu.suite_guest import suite_guest_config

    try:
        build = ensure_kernel(args.kernel_src, arch=args.arch, kernel=args.kernel, kdir=args.kdir,
                              page_size=args.page_size)
        probes: Optional[tuple[Path, ...]] = None  # None: build the run's probe
        if args.no_probe:
            probes = ()
        elif args.probe:
            probes = tuple(p.resolve() for p in args.probe)
        # The run's own guest (fixtures/qemu.py builds it the same way), so what
        # --print-cmd shows is what pytest --target=qemu boots.
        guest = Guest(suite_guest_config(build, arch=args.arch, extra_append=tuple(args.append),
                                         probe_modules=probes, memory_mb=args.memory))
        mode = "shell" if args.shell else "agent"
        try:
            if args.print_cmd or not args.shell:
                print(shlex.join(guest.command_line(mode)))
                if not args.shell:
                    return 0
            return subprocess.call(guest.command_line("shell"))
        finally:
            shutil.rmtree(guest.workdir, ignore_errors=True)  # only the socket dir
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
