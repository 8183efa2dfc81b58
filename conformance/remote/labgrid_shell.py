"""The shell pipe to a labgrid target's board: its SSHDriver, or its serial console.

A labgrid environment says how a board is reached; the suite only needs a
command whose stdin/stdout is a shell there, so that ``PipeLink`` streams the
agent as it does for ``--board`` and ``--board-cmd``:

* an ``SSHDriver`` gives ``ssh`` through labgrid's own control master (its
  keyfile, user and the place's ``NetworkService``); when the board reboots the
  master is gone and ssh connects afresh with the same options;
* otherwise a ``ShellDriver`` on a console: ``python -m
  conformance.remote.labgrid_console`` logs in with labgrid and bridges the
  console to its stdin/stdout.  It runs in its own process so that each
  reconnect logs in again, as after a reboot.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from conformance.errors import SetupError

# The options labgrid's own master connection uses, plus ours for a board that
# stops answering (noticed in ~15 s) and for never prompting.
_SSH_OPTIONS = ("UserKnownHostsFile=/dev/null", "StrictHostKeyChecking=no", "BatchMode=yes",
                "ServerAliveInterval=5", "ServerAliveCountMax=3", "ConnectTimeout=10")


def _has_driver(lg_target: Any, name: str) -> bool:
    return any(type(d).__name__ == name for d in lg_target.drivers)


def ssh_pipe(lg_target: Any) -> list[str]:
    """``ssh`` to the board of ``lg_target`` through its (activated) SSHDriver."""
    driver = lg_target.get_driver("SSHDriver")
    service = driver.networkservice
    argv = [driver._ssh, "-x", "-T", *driver.ssh_prefix]
    for opt in _SSH_OPTIONS:
        argv += ["-o", opt]
    return argv + ["-p", str(service.port), "-l", driver._get_username(), service.address]


def console_pipe(env_file: Path, target_name: str = "main") -> list[str]:
    return [sys.executable, "-m", "conformance.remote.labgrid_console", "--lg-env", str(env_file),
            "--lg-target", target_name]


def board_pipe(lg_target: Any, env_file: Path) -> tuple[list[str], str]:
    """The pipe command for ``lg_target``'s board, and which labgrid driver gives it."""
    if _has_driver(lg_target, "SSHDriver"):
        return ssh_pipe(lg_target), "SSHDriver"
    if _has_driver(lg_target, "ShellDriver"):
        return console_pipe(env_file, lg_target.name), "ShellDriver"
    drivers = ", ".join(sorted(type(d).__name__ for d in lg_target.drivers)) or "none"
    raise SetupError(f"labgrid target {lg_target.name!r} in {env_file} has no SSHDriver or "
                     f"ShellDriver to give a shell on the board (drivers: {drivers})")
