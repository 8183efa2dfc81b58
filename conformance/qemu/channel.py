"""The host end of the agent's virtio-serial port: a unix socket, JSON lines.

The host listens; QEMU connects to it as a chardev client when it starts, so
the connection exists before the guest boots and no connect race is possible.
"""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path
from typing import Any, Callable, Optional

from conformance.guest import protocol


class ChannelTimeout(Exception):
    """No complete reply within the deadline."""


class ChannelClosed(Exception):
    """QEMU closed its end (it exited)."""


class Channel:
    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            path.unlink()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(1)
        self._conn: Optional[socket.socket] = None
        self._buf = b""
        self._next_id = 1

    def accept(self, deadline: float, alive: Callable[[], bool]) -> None:
        while self._conn is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout("QEMU did not connect to the agent socket")
            if not alive():
                raise ChannelClosed("QEMU exited before connecting to the agent socket")
            r, _, _ = select.select([self._listener], [], [], min(left, 0.2))
            if r:
                self._conn, _ = self._listener.accept()

    def read_message(self, deadline: float, alive: Callable[[], bool]) -> dict[str, Any]:
        assert self._conn is not None, "accept() first"
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout("no reply from the guest agent")
            # Short slices so a QEMU that died is noticed without waiting the full timeout.
            r, _, _ = select.select([self._conn], [], [], min(left, 0.5))
            if not r:
                if not alive():
                    raise ChannelClosed("QEMU exited")
                continue
            chunk = self._conn.recv(1 << 16)
            if not chunk:
                raise ChannelClosed("QEMU closed the agent socket")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return protocol.loads(line)

    def call(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float,
             alive: Callable[[], bool]) -> dict[str, Any]:
        """Send one request and return its reply message (``result`` or ``error``)."""
        assert self._conn is not None, "accept() first"
        req_id = self._next_id
        self._next_id += 1
        self._conn.sendall(protocol.request(req_id, op, args, kwargs))
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read_message(deadline, alive)
            if msg.get("id") == req_id:
                return msg
            # A stale reply (to a request that timed out earlier) or a late ready line: skip.

    def close(self) -> None:
        for s in (self._conn, self._listener):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self._conn = None
        try:
            self.path.unlink()
        except OSError:
            pass
