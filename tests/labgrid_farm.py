"""A labgrid farm on 127.0.0.1 for the suite's own tests: a coordinator, an exporter, places.

The coordinator keeps its state in its working directory, so each farm gets a
fresh one.  The exporter publishes one ``NetworkService`` per board; each
board gets a place matching it, tagged for reservations.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from conformance.errors import SetupError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Board:
    name: str  # the exporter's group name, and the place's name
    port: int  # the board's sshd
    username: str = "root"


@dataclass
class Farm:
    workdir: Path
    boards: list[Board]
    tags: dict[str, str] = field(default_factory=lambda: {"board": "dmabuf-test"})
    port: int = 0
    keyfile: Path | None = None  # the key the environment's SSHDriver logs in with
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def coordinator(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, *args: str, token: str = "", check: bool = True) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LG_")}
        if token:
            env["LG_TOKEN"] = token
        proc = subprocess.run(["labgrid-client", "-x", self.coordinator, *args],
                              capture_output=True, text=True, env=env, timeout=60)
        if check and proc.returncode != 0:
            raise SetupError(f"labgrid-client {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout + proc.stderr

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        coord_dir = self.workdir / "coordinator"
        coord_dir.mkdir(exist_ok=True)
        self._spawn(["labgrid-coordinator", "-l", self.coordinator], coord_dir, "coordinator")
        self._wait(lambda: self.client("places", check=False).find("rror") < 0, "coordinator")
        config = self.workdir / "exporter.yaml"
        config.write_text("".join(
            f"{b.name}:\n  NetworkService:\n    address: 127.0.0.1\n    port: {b.port}\n"
            f"    username: {b.username}\n" for b in self.boards))
        self._spawn(["labgrid-exporter", "-c", self.coordinator, "-n", "farm", "--hostname",
                     "127.0.0.1", str(config)], self.workdir, "exporter")
        self._wait(lambda: all(f"farm/{b.name}/NetworkService" in self.client("resources")
                               for b in self.boards), "exporter's resources")
        for b in self.boards:
            self.client("-p", b.name, "create")
            self.client("-p", b.name, "add-match", f"farm/{b.name}/NetworkService")
            self.client("-p", b.name, "set-tags", *(f"{k}={v}" for k, v in self.tags.items()))

    def acquired_by(self, place: str) -> str:
        m = re.search(r"^\s+acquired: (.*)$", self.client("-p", place, "show"), re.M)
        return m.group(1).strip() if m else ""

    def reservations(self) -> str:
        return self.client("reservations")

    def stop(self) -> None:
        # The exporter first: it exits when the coordinator goes away, but slowly.
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()

    def _spawn(self, argv: list[str], cwd: Path, name: str) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (the process owns it)
        self._procs.append(subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT))

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self._procs):
                logs = {f.name: f.read_text()[-500:] for f in self.workdir.glob("*.log")}
                raise SetupError(f"the labgrid farm's {what} did not start: {logs}")
            try:
                if ready():
                    return
            except SetupError:
                pass
            time.sleep(0.3)
        raise SetupError(f"the labgrid farm's {what} not ready within {timeout:g} s")
