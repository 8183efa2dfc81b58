"""Where ``qemu/setup-host.sh --with-lava`` (``lava/setup-lava.sh``) put LAVA's dispatcher."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import SetupError
from conformance.qemu.kernel import REPO_ROOT, cache_root

SETUP_COMMAND = "bash qemu/setup-host.sh --with-lava"
# The version lava/setup-lava.sh installs, which the templates of lava/ were tested with.
LAVA_VERSION = "2023.01-2"


class LavaMissing(SetupError):
    """lava-run is not installed."""


@dataclass(frozen=True)
class LavaInstall:
    home: Path  # lava/setup-lava.sh's LAVA_HOME

    @property
    def lava_run(self) -> Path:
        return self.home / "bin" / "lava-run"

    @property
    def python(self) -> Path:
        """The venv interpreter with LAVA's modules, jinja2 and PyYAML."""
        return self.home / "venv" / "bin" / "python"

    @property
    def device_types(self) -> Path:
        return self.home / "root" / "usr" / "share" / "lava-server" / "device-types"

    @property
    def busybox(self) -> Path:
        return self.home / "root" / "bin" / "busybox"


def lava_home() -> Path:
    return cache_root() / "lava"


def find_lava() -> LavaInstall:
    """The installed dispatcher, or LavaMissing naming the setup command."""
    install = LavaInstall(lava_home())
    stamp = install.home / f"installed-{LAVA_VERSION}"
    missing = [p for p in (stamp, install.lava_run, install.python, install.device_types,
                           install.busybox) if not p.exists()]
    if missing:
        other = shutil.which("lava-run")
        extra = (f" ({other} is on PATH, but this suite needs the unpacked copy with its "
                 "device-type templates and busybox-static)") if other else ""
        raise LavaMissing(f"lava-run is not installed in {install.home}{extra}: run "
                          f"`{SETUP_COMMAND}` (as root) in {REPO_ROOT}")
    return install
