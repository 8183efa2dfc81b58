"""The agent: serves target operations where the kernel is, to the host that runs pytest.

In a QEMU guest ``qemu/guest/init`` starts it as ``python3 -m
conformance.guest.agent`` on the virtio-serial port.  On a board the remote
target streams it over a shell pipe (``conformance.remote``) and it serves its
own stdin/stdout (``--stdio``); there it also copies new kernel log records to
stderr (``--kmsg-console``), which the host keeps as the board's console.
Stdlib + ``conformance`` only, Python 3.7 or newer: a board's vendor image has
python3 and nothing else, and importing pytest under TCG costs seconds.  It
runs the same ``LocalTarget`` a ``--target=local`` run uses, and answers one
request at a time (the host side is synchronous).  It serves the Target
operations and nothing else: no port is opened, no code is taken from the wire.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time

from conformance.guest import modules, protocol
from conformance.records import Direction
from conformance.targets.base import AGENT_EXTRA_OPERATIONS, OPERATIONS, Target

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

DEFAULT_FACTORY = "conformance.targets.local:LocalTarget"
SERVED = frozenset(OPERATIONS + AGENT_EXTRA_OPERATIONS)


def _log(msg: str) -> None:
    # stderr is the serial console: these lines land in the captured console file.
    print(f"[agent] {msg}", file=sys.stderr, flush=True)


def _direction_params(op: str) -> dict[int, str]:
    """Positions and names of ``Direction`` parameters of ``Target.<op>``.

    Read from the code object, not with ``inspect``: importing inspect (ast, dis,
    tokenize) is a noticeable part of a guest's start under TCG.
    """
    fn = getattr(Target, op)
    code = fn.__code__
    params = code.co_varnames[1:code.co_argcount]  # without self
    notes = fn.__annotations__
    return {i: name for i, name in enumerate(params)
            if notes.get(name) in ("Direction", Direction)}


class Agent:
    def __init__(self, target: Optional[Target], setup_error: Optional[BaseException],
                 factory: Optional[Callable[[], Target]] = None) -> None:
        self._target = target
        self.setup_error = setup_error
        # A board's probe module is pushed after the agent starts: the target is made at
        # its first operation, so it finds the probe the host loaded.
        self._factory = factory
        self._direction = {op: _direction_params(op) for op in OPERATIONS}
        self.modules = modules.Modules()

    @property
    def target(self) -> Optional[Target]:
        if self._target is None and self._factory is not None and self.setup_error is None:
            try:
                self._target = self._factory()
            except Exception as exc:  # noqa: BLE001 - reported to the host on every call
                self.setup_error = exc
        return self._target

    def shutdown(self) -> None:
        """End of a board session: free the target's handles, unload what was loaded."""
        close = getattr(self._target, "shutdown", None)
        if close is not None:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - the modules must still go
                _log(f"target shutdown: {type(exc).__name__}: {exc}")
        self._target = None
        self.modules.unload_all()

    def handle(self, msg: dict[str, Any]) -> Optional[bytes]:
        req_id = msg["id"]
        op = msg.get("op")
        try:
            args = list(protocol.decode_value(msg.get("args") or []))
            kwargs = dict(protocol.decode_value(msg.get("kwargs") or {}))
            result = self.dispatch(str(op), args, kwargs)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the host
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return protocol.error_reply(req_id, exc)
        return protocol.reply(req_id, result)

    def dispatch(self, op: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if op == "ping":
            return {"pid": os.getpid(), "time": time.time()}
        if op == "crash":
            return crash(*args, **kwargs)
        if op == "exec":
            return run_command(*args, **kwargs)
        if op == "load_module":
            return self.modules.load(*args, **kwargs)
        if op == "unload_module":
            return self.modules.unload(*args, **kwargs)
        if op == "bench_ops":
            if self.target is None:
                raise self.setup_error or protocol.ProtocolError("no target in the guest")
            return bench_ops(self.target, *args, **kwargs)
        if op not in SERVED:
            raise protocol.ProtocolError(f"the agent has no operation {op!r}")
        target = self.target
        if target is None:
            raise self.setup_error or protocol.ProtocolError("no target in the agent")
        self._typed(op, args, kwargs)
        if op == "run_steps" and args and isinstance(args[0], list):
            from conformance.steps import Step  # decoding the steps loaded it already

            steps = []
            for step in args[0]:
                step_args, step_kwargs = list(step.args), dict(step.kwargs)
                self._typed(step.op, step_args, step_kwargs)
                steps.append(Step(step.op, tuple(step_args), step_kwargs))
            args[0] = steps
        return getattr(target, op)(*args, **kwargs)

    def _typed(self, op: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Turn the ints that stand for a ``Direction`` on the wire back into one."""
        for pos, name in self._direction.get(op, {}).items():
            if pos < len(args) and isinstance(args[pos], int):
                args[pos] = Direction(args[pos])
            elif isinstance(kwargs.get(name), int):
                kwargs[name] = Direction(kwargs[name])


def crash(kind: str = "panic") -> None:
    """Test-only: make the guest fail the way a broken exporter would."""
    if kind == "panic":
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("c")  # the kernel panics inside this write; no reply is sent
    elif kind == "hang":
        while True:
            time.sleep(3600)
    elif kind == "exit":
        os._exit(3)  # in a guest the agent is PID 1: the kernel panics ("Attempted to kill init")
    elif kind == "reboot":
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("b")  # an immediate reboot, as a board's watchdog would do
    raise protocol.ProtocolError(f"crash kind must be panic, hang, exit or reboot, not {kind!r}")


def run_command(argv: list[str], timeout: float = 60.0) -> dict[str, Any]:
    """Test/bench-only: run a program in the guest (e.g. the C comparison loop)."""
    import subprocess  # only here: the agent's start does without it

    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return {"returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr}


def bench_ops(target: Target, exporter: str = "heap:system", n: int = 1000,
              size: int = 4096) -> dict[str, float]:
    """Bench-only: per-operation cost of the bindings inside the guest, in microseconds."""
    t0 = time.perf_counter()
    for _ in range(n):
        target.close(target.allocate(exporter, size))
    alloc_close = (time.perf_counter() - t0) / n * 1e6
    buf = target.allocate(exporter, size)
    t0 = time.perf_counter()
    for _ in range(n):
        target.sync(buf, 0 | 3)  # SYNC_START | SYNC_RW
        target.sync(buf, 4 | 3)  # SYNC_END | SYNC_RW
    sync_pair = (time.perf_counter() - t0) / n * 1e6
    target.close(buf)
    return {"alloc_close_us": alloc_close, "sync_start_end_us": sync_pair, "n": n}


def load_factory(spec: str) -> Callable[[], Target]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "LocalTarget")


def find_port(name: str = protocol.PORT_NAME) -> str:
    """The /dev node of the named virtio-serial port.

    /dev/virtio-ports/<name> is a udev symlink; the guest has no udev, so look
    the name up in sysfs and use the devtmpfs node (/dev/vportNpM).
    """
    sysfs = "/sys/class/virtio-ports"
    for vport in sorted(os.listdir(sysfs)) if os.path.isdir(sysfs) else []:
        try:
            with open(os.path.join(sysfs, vport, "name")) as f:
                if f.read().strip() == name:
                    return f"/dev/{vport}"
        except OSError:
            continue
    return f"/dev/virtio-ports/{name}"


def serve(port: str, agent: Agent, ready: dict[str, Any]) -> None:
    """Serve a virtio-serial port; the host may go and come back, so EOF is not the end."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    serve_fds(fd, fd, agent, ready, eof_ends=False)


def serve_fds(rfd: int, wfd: int, agent: Agent, ready: dict[str, Any], *,
              eof_ends: bool = True) -> None:
    _write_all(wfd, protocol.dumps({"id": protocol.READY_ID, "ready": ready}))
    buf = b""
    while True:
        chunk = os.read(rfd, 1 << 16)
        if not chunk:
            if eof_ends:
                return
            # Nobody on the host end right now: wait for it to come back.
            time.sleep(0.05)
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            if line.strip() == protocol.QUIT_LINE:
                _log("the host asked the agent to quit")
                return
            try:
                msg = protocol.loads(line)
            except protocol.ProtocolError as e:
                _log(str(e))
                continue
            out = agent.handle(msg)
            if out is not None:
                _write_all(wfd, out)


def stdio_channel() -> tuple[int, int]:
    """The pipe the remote target gave us, and stdout pointed at stderr.

    A stray print from anywhere in the agent would corrupt the protocol; it goes to
    the console instead.  A serial console's tty is put in raw mode, so requests are
    neither echoed nor cooked (the bootstrap did it already; harmless twice).
    """
    rfd, wfd = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if os.isatty(rfd):
        import tty

        tty.setraw(rfd)
    return rfd, wfd


def copy_kmsg_to_stderr(path: str = "/dev/kmsg") -> None:
    """Copy new kernel log records to stderr, as a serial console would show them.

    The host parses this stream like a guest's console (WARN/BUG, DMA-API lines,
    the last words of a board that panics or reboots).  The agent's own kmsg
    reader (health) has its own file position; this one does not disturb it.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
        os.lseek(fd, 0, os.SEEK_END)
    except OSError as e:
        _log(f"no kernel log on the console: cannot read {path} ({e})")
        return

    def pump() -> None:
        while True:
            try:
                record = os.read(fd, 8192)
            except OSError as e:  # EPIPE: records were overwritten before we read them
                if e.errno == 32:
                    continue
                return
            if not record:
                return
            head, _, text = record.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            usec = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
            body = text.split("\n", 1)[0]
            sys.stderr.write(f"[{usec // 1000000:5d}.{usec % 1000000:06d}] {body}\n")
            sys.stderr.flush()

    threading.Thread(target=pump, name="kmsg-console", daemon=True).start()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def start_agent(factory_spec: str = DEFAULT_FACTORY, *,
                make_target: bool = True) -> tuple[Agent, dict[str, Any]]:
    """The agent and its ready message; a target that cannot be made is its setup error."""
    started = time.monotonic()
    setup_error: Optional[BaseException] = None
    factory: Optional[Callable[[], Target]] = None
    try:
        factory = load_factory(factory_spec)
    except Exception as exc:  # noqa: BLE001 - reported to the host on every call
        setup_error = exc
        _log(f"cannot load the target {factory_spec}: {type(exc).__name__}: {exc}")
    agent = Agent(None, setup_error, factory)
    if make_target:
        # In a guest the target is made now, so a broken one shows in the ready line.
        agent.target  # noqa: B018
    uname = os.uname()
    ready = {
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "kernel": uname.release,
        "machine": uname.machine,
        "factory": factory_spec,
        "setup_error": None if agent.setup_error is None
        else f"{type(agent.setup_error).__name__}: {agent.setup_error}",
        "startup_s": round(time.monotonic() - started, 3),
    }
    return agent, ready


def serve_guest(factory_spec: str = DEFAULT_FACTORY, port: Optional[str] = None) -> int:
    """A QEMU guest's agent: serve the virtio-serial port until the guest is stopped."""
    agent, ready = start_agent(factory_spec)
    port = port or find_port()
    _log(f"ready on {port} ({ready['startup_s']} s to create the target)")
    serve(port, agent, ready)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    import argparse  # a guest's PID 1 calls serve_guest and does without it

    ap = argparse.ArgumentParser(prog="python3 -m conformance.guest.agent")
    ap.add_argument("--port", default=None, help="default: the virtio port named "
                    f"{protocol.PORT_NAME!r}")
    ap.add_argument("--stdio", action="store_true",
                    help="serve stdin/stdout (a board reached over a shell pipe); EOF ends")
    ap.add_argument("--kmsg-console", action="store_true",
                    help="copy new kernel log records to stderr (a board's console)")
    ap.add_argument("--target-factory", default=DEFAULT_FACTORY,
                    help="module:callable that returns the Target to serve")
    args = ap.parse_args(argv)
    if not args.stdio:
        return serve_guest(args.target_factory, args.port)
    # A board: the probe is pushed after the start, so the target is made at first use.
    agent, ready = start_agent(args.target_factory, make_target=False)
    rfd, wfd = stdio_channel()
    if args.kmsg_console:
        copy_kmsg_to_stderr()
    _log(f"ready on stdin/stdout, python {ready['python']}, kernel {ready['kernel']}")
    try:
        serve_fds(rfd, wfd, agent, ready)
    finally:
        agent.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
