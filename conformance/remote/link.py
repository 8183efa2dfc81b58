"""The host end of a shell pipe to a board: start the agent there, carry requests.

``argv`` is any command whose stdin/stdout is a shell on the board (``ssh -T
user@host``, ``adb shell``, a labgrid console).  ``start()`` runs it, types the
bootstrap line, streams the agent when the board asks for it, and waits for
the agent's ready line.  Then requests and replies are JSON lines, as on a
guest's virtio-serial port.

The board's stderr (the agent's log and its copy of the kernel log) is kept in
a console file, like a guest's serial console; so are stdout lines that are
not protocol (a serial console mixes both).  A pipe that closes or a board
that stops answering ends the operation in flight as ``GuestError`` with the
console's last lines; ``restart()`` connects again, waiting while the board
reboots.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from conformance.errors import GuestError, SetupError
from conformance.guest import protocol
from conformance.qemu.console import ConsoleLog, parse_console
from conformance.remote import bundle

RECONNECT_PAUSE_S = 1.0  # between attempts while a board reboots
HANDSHAKE_LINES = 200  # non-protocol lines (motd, prompts, echo) skipped before giving up


class BoardUnusable(SetupError):
    """The board can be reached but cannot run the agent (no python3, too old)."""


class PipeLink:
    """One agent on a board, reached through a command's stdin/stdout."""

    # The console is kmsg copied over the pipe, behind the requests: not read for
    # health (the agent reads kmsg itself), kept for the excerpt of a lost board.
    health_from_console = False

    def __init__(self, argv: Sequence[str], console_path: Path, *, name: str = "board",
                 python: str = "python3", description: Optional[dict[str, str]] = None,
                 agent_args: Sequence[str] = ()) -> None:
        if not argv:
            raise SetupError("the board command is empty")
        self.argv = list(argv)
        self.python = python
        self.agent_args = ["--stdio", "--kmsg-console", *agent_args]
        self.name = name
        self.console = ConsoleLog(console_path)
        console_path.parent.mkdir(parents=True, exist_ok=True)
        self._description = dict(description or {})
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._buf = b""
        self._next_id = 1
        self._lock = threading.Lock()  # one request at a time (cases may use threads)
        self._stderr_thread: Optional[threading.Thread] = None
        self.ready_info: dict[str, Any] = {}
        self.connects = 0
        self.last_connect_s = 0.0

    # -- AgentLink --------------------------------------------------------------------

    def describe(self) -> dict[str, str]:
        return {"board_command": shlex.join(self.argv), **self._description}

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.alive():
            raise SetupError("the board link is already open")
        self._note(f"connecting: {shlex.join(self.argv)}")
        self._started = time.monotonic()
        self._mark = self.console.mark()
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          start_new_session=True)
        except FileNotFoundError as e:
            raise SetupError(f"cannot run the board command {self.argv[0]!r}: {e}") from None
        self._buf = b""
        self._stderr_thread = threading.Thread(target=self._keep_stderr, args=(self._proc,),
                                               name=f"{self.name}-stderr", daemon=True)
        self._stderr_thread.start()
        self.connects += 1
        try:
            self._send(bundle.bootstrap_line(self.agent_args, self.python).encode() + b"\n")
        except ConnectionError:
            pass  # the command ended already (no route, refused): wait_ready says so, with why

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        try:
            self._skip_to(bundle.SEND, deadline)
            self._send(bundle.payload())
            while True:
                msg = self._read_message(deadline)
                if "ready" in msg:
                    break
        except BoardUnusable:
            self.stop()
            raise
        except (TimeoutError, ConnectionError, OSError) as e:
            self.stop()  # first: it waits for the command's last words on stderr
            excerpt = self.console.tail(since=self._mark)
            raise GuestError(f"the agent did not start on the board: {e}",
                             console_log=excerpt) from None
        self.ready_info = msg["ready"]
        self.last_connect_s = time.monotonic() - self._started
        if self.ready_info.get("setup_error"):
            self._note(f"the agent's target cannot start: {self.ready_info['setup_error']}")
        return self.ready_info

    def restart(self, timeout: float) -> dict[str, Any]:
        """Connect again, retrying while the board reboots, until ``timeout``."""
        self.stop()
        deadline = time.monotonic() + timeout
        last: Optional[Exception] = None
        while time.monotonic() < deadline:
            try:
                self.start()
                return self.wait_ready(max(1.0, deadline - time.monotonic()))
            except BoardUnusable:
                raise
            except (GuestError, SetupError) as e:
                last = e
                time.sleep(RECONNECT_PAUSE_S)
        raise GuestError(f"the board did not come back within {timeout:g} s: {last}",
                         console_log=self.console.tail())

    def call_raw(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 timeout: float) -> dict[str, Any]:
        if not self.alive():
            raise GuestError(f"the board link is closed (asked for {op})",
                             console_log=self.console.tail())
        mark = self.console.mark()
        with self._lock:
            req_id = self._next_id
            self._next_id += 1
            try:
                self._send(protocol.request(req_id, op, args, kwargs))
                deadline = time.monotonic() + timeout
                while True:
                    msg = self._read_message(deadline)
                    if msg.get("id") == req_id:
                        return msg
                    # A stale reply to a request that timed out earlier: skip it.
            except (TimeoutError, ConnectionError, OSError) as e:
                self.stop()  # first: it waits for the last console lines on stderr
                text = self.console.since(mark)
                report = parse_console(text)
                if report.panic is not None:
                    why = f"the board's kernel panicked during {op}: {report.panic}"
                elif isinstance(e, TimeoutError):
                    why = f"the board did not answer {op} within {timeout:g} s"
                else:
                    why = f"the connection to the board was lost during {op} ({e})"
                raise GuestError(why, console_log=report.excerpt or self.console.tail(
                    since=mark)) from None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()  # EOF: the agent ends its session and unloads what it loaded
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=2)

    def cleanup(self) -> None:
        self.stop()

    # -- the pipe ---------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise ConnectionError("the board command closed its input") from None

    def _read_line(self, deadline: float) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the board")
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not r:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                code = self._proc.poll()
                raise ConnectionError("the board command ended" +
                                      (f" (exit {code})" if code is not None else ""))
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def _skip_to(self, marker: str, deadline: float) -> None:
        """Read until ``marker``; what comes before (motd, prompt, echo) is console."""
        for _ in range(HANDSHAKE_LINES):
            line = self._read_line(deadline).decode("utf-8", "replace")
            if bundle.ERROR in line:
                raise BoardUnusable(line.split(bundle.ERROR, 1)[1].strip())
            if marker in line:
                return
            self._note(line, raw=True)
        raise ConnectionError(f"the board shell did not start the agent: {HANDSHAKE_LINES} "
                              "lines without its marker")

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while True:
            line = self._read_line(deadline)
            if line.startswith(b"{"):
                try:
                    return protocol.loads(line)
                except (protocol.ProtocolError, json.JSONDecodeError):
                    pass
            if line.strip():
                self._note(line.decode("utf-8", "replace"), raw=True)  # console on stdout

    def _keep_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        with self.console.path.open("ab") as out:
            for line in iter(proc.stderr.readline, b""):
                out.write(line)
                out.flush()
        proc.stderr.close()

    def _note(self, text: str, *, raw: bool = False) -> None:
        with self.console.path.open("a", encoding="utf-8") as out:
            out.write(text + "\n" if raw else f"[link] {text}\n")
