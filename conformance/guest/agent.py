"""The in-guest agent: serves target operations over the virtio-serial port.

Started by ``qemu/guest/init`` as ``python3 -m conformance.guest.agent``.
Stdlib + ``conformance`` only: importing pytest under TCG costs seconds.  It
runs the same ``LocalTarget`` a board run uses, so the guest exercises exactly
the bindings under test, and answers one request at a time (the host side is
synchronous).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable, Optional

from conformance.guest import protocol
from conformance.records import Direction
from conformance.targets.base import OPERATIONS, Target

DEFAULT_FACTORY = "conformance.targets.local:LocalTarget"
# Not compared with the model (process-level): allocate_in_child, set_fd_limit.
EXTRA_OPERATIONS = (
    "info",
    "exporters",
    "devices",
    "health",
    "close_all",
    "allocate_in_child",
    "set_fd_limit",
)

# issue 11 (bad input at volume): a batch of inputs answered in the guest, compared with
# the model by the case itself (not through the lockstep)
EXTRA_OPERATIONS = EXTRA_OPERATIONS + ("bad_input_batch",)


def _log(msg: str) -> None:
    # stderr is the serial console: these lines land in the captured console file.
    print(f"[agent] {msg}", file=sys.stderr, flush=True)


def _direction_params(op: str) -> dict[int, str]:
    """Positions and names of ``Direction`` parameters of ``Target.<op>``."""
    sig = inspect.signature(getattr(Target, op))
    params = [p for p in sig.parameters.values() if p.name != "self"]
    return {i: p.name for i, p in enumerate(params) if p.annotation in ("Direction", Direction)}


class Agent:
    def __init__(self, target: Optional[Target], setup_error: Optional[BaseException]) -> None:
        self.target = target
        self.setup_error = setup_error
        self._direction = {op: _direction_params(op) for op in OPERATIONS}

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
        if op == "bench_ops":
            if self.target is None:
                raise self.setup_error or protocol.ProtocolError("no target in the guest")
            return bench_ops(self.target, *args, **kwargs)
        if op not in OPERATIONS and op not in EXTRA_OPERATIONS:
            raise protocol.ProtocolError(f"the guest agent has no operation {op!r}")
        if self.target is None:
            raise self.setup_error or protocol.ProtocolError("no target in the guest")
        for pos, name in self._direction.get(op, {}).items():
            if pos < len(args) and isinstance(args[pos], int):
                args[pos] = Direction(args[pos])
            elif isinstance(kwargs.get(name), int):
                kwargs[name] = Direction(kwargs[name])
        return getattr(self.target, op)(*args, **kwargs)


def crash(kind: str = "panic") -> None:
    """Test-only: make the guest fail the way a broken exporter would."""
    if kind == "panic":
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("c")  # the kernel panics inside this write; no reply is sent
    elif kind == "hang":
        while True:
            time.sleep(3600)
    elif kind == "exit":
        os._exit(3)  # the agent is PID 1: the kernel panics with "Attempted to kill init"
    raise protocol.ProtocolError(f"crash kind must be panic, hang or exit, not {kind!r}")


def run_command(argv: list[str], timeout: float = 60.0) -> dict[str, Any]:
    """Test/bench-only: run a program in the guest (e.g. the C comparison loop)."""
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
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    _write_all(fd, protocol.dumps({"id": protocol.READY_ID, "ready": ready}))
    buf = b""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            # Nobody on the host end right now: wait for it to come back.
            time.sleep(0.05)
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                msg = protocol.loads(line)
            except protocol.ProtocolError as e:
                _log(str(e))
                continue
            out = agent.handle(msg)
            if out is not None:
                _write_all(fd, out)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m conformance.guest.agent")
    ap.add_argument("--port", default=None, help="default: the virtio port named "
                    f"{protocol.PORT_NAME!r}")
    ap.add_argument("--target-factory", default=DEFAULT_FACTORY,
                    help="module:callable that returns the Target to serve")
    args = ap.parse_args(argv)
    started = time.monotonic()
    target: Optional[Target] = None
    setup_error: Optional[BaseException] = None
    try:
        target = load_factory(args.target_factory)()
    except Exception as exc:  # noqa: BLE001 - reported to the host on every call
        setup_error = exc
        _log(f"cannot create the target {args.target_factory}: {type(exc).__name__}: {exc}")
    ready = {
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "kernel": platform.release(),
        "factory": args.target_factory,
        "setup_error": None if setup_error is None else f"{type(setup_error).__name__}: "
                                                           f"{setup_error}",
        "startup_s": round(time.monotonic() - started, 3),
    }
    port = args.port or find_port()
    _log(f"ready on {port} ({ready['startup_s']} s to create the target)")
    serve(port, Agent(target, setup_error), ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
