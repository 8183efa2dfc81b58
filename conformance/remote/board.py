"""The ``ssh`` target: a board reached over a shell pipe, running only the streamed agent.

``BoardTarget`` is ``AgentTarget`` over a ``PipeLink``; what it adds is the
board's side of the probe: a ``.ko`` pushed over the same pipe and loaded
with ``init_module(2)`` after every connect, and unloaded at the end, so the
board is left as it was found.

``ssh_argv("root@board:2222")`` is the pipe for ``--board``; ``--board-cmd``
gives any other (``adb shell``, a labgrid console).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from conformance.errors import SetupError
from conformance.remote.link import PipeLink
from conformance.targets.agent import DEFAULT_OP_TIMEOUT, DEFAULT_READY_TIMEOUT, AgentTarget

# user@host, user@host:port, user@[v6addr]:port; the user is required (root is the norm,
# and a board's default login is rarely the host user's name).
_BOARD = re.compile(r"^(?P<user>[^@\s]+)@(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\s\[\]]+))"
                    r"(?::(?P<port>\d{1,5}))?$")


@dataclass(frozen=True)
class BoardSpec:
    user: str
    host: str
    port: Optional[int] = None

    @classmethod
    def parse(cls, text: str) -> BoardSpec:
        m = _BOARD.match(text.strip())
        if not m:
            raise SetupError(f"--board {text!r}: expected USER@HOST[:PORT] "
                             "(e.g. root@192.168.1.20 or root@127.0.0.1:2222)")
        port = int(m.group("port")) if m.group("port") else None
        if port is not None and not 0 < port < 65536:
            raise SetupError(f"--board {text!r}: port {port} is out of range")
        return cls(m.group("user"), m.group("v6") or m.group("host"), port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" + (f":{self.port}" if self.port else "")


def ssh_argv(spec: BoardSpec, *, identity: Optional[Path] = None,
             options: Sequence[str] = ()) -> list[str]:
    """``ssh`` giving a shell on the board's stdin/stdout: no tty, never a password prompt."""
    argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            # a board that panics or loses power is noticed in ~15 s, not at TCP's timeout
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    if spec.port:
        argv += ["-p", str(spec.port)]
    if identity is not None:
        if not Path(identity).is_file():
            raise SetupError(f"--ssh-identity {identity}: no such file")
        argv += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
    for opt in options:
        if "=" not in opt:
            raise SetupError(f"--ssh-option {opt!r}: expected NAME=VALUE (as ssh -o takes it)")
        argv += ["-o", opt]
    return argv + [f"{spec.user}@{spec.host}"]


def board_cmd_argv(cmd: str) -> list[str]:
    try:
        argv = shlex.split(cmd)
    except ValueError as e:
        raise SetupError(f"--board-cmd {cmd!r}: {e}") from None
    if not argv:
        raise SetupError("--board-cmd is empty: give a command whose stdin/stdout is a shell "
                         "on the board, e.g. \"ssh -T root@board\" or \"adb shell\"")
    return argv


def module_vermagic(image: bytes) -> str:
    m = re.search(rb"\0vermagic=([^\0]*)\0", image)
    return m.group(1).decode(errors="replace") if m else ""


class BoardTarget(AgentTarget):
    name = "ssh"

    def __init__(self, link: PipeLink, *, probe_ko: Optional[Path] = None, name: str = "ssh",
                 op_timeout: float = DEFAULT_OP_TIMEOUT,
                 ready_timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        super().__init__(link, op_timeout=op_timeout, ready_timeout=ready_timeout)
        self.name = name  # the target's name in reports: ssh, or labgrid
        self.pipe = link
        self.probe_ko = probe_ko
        self._probe_image = Path(probe_ko).read_bytes() if probe_ko else b""
        self._loaded: Optional[str] = None

    def start(self) -> None:
        super().start()
        self._load_probe()

    def restart(self) -> None:
        super().restart()
        self._loaded = None  # a rebooted board lost it; a reconnected one unloaded it on EOF
        self._load_probe()

    def stop(self) -> None:
        if self._loaded and self.link.alive():
            try:
                self.call("unload_module", self._loaded)
            except SetupError as e:
                self.pipe._note(f"could not unload {self._loaded}: {e}")
        self._loaded = None
        super().stop()

    def _load_probe(self) -> None:
        if not self._probe_image:
            return
        release = str(self.pipe.ready_info.get("kernel", ""))
        vermagic = module_vermagic(self._probe_image)
        if release and vermagic and vermagic.split()[0] != release:
            raise SetupError(
                f"--probe-ko {self.probe_ko} was built for {vermagic.split()[0]}, the board runs "
                f"{release}: build it against the board's kernel (--kdir DIR "
                "--cross-compile PREFIX)")
        answer = self.call("load_module", self._probe_image)
        if answer.get("loaded"):
            self._loaded = str(answer["name"])
