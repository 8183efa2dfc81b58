"""The running kernel's build configuration, where the system exposes it."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KernelConfig:
    source: str  # where it was read from; "" when not found
    options: dict[str, str] = field(default_factory=dict)

    def state(self, option: str) -> str:
        """``y``, ``m``, ``n`` (explicitly off or absent) or ``?`` when there is no config."""
        if not self.source:
            return "?"
        return self.options.get(option, "n")


def parse(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            options[key] = value.strip('"')
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            options[line[2:].split()[0]] = "n"
    return options


def read_config(candidates: tuple[str, ...] | None = None) -> KernelConfig:
    if candidates is None:
        candidates = ("/proc/config.gz", f"/boot/config-{os.uname().release}")
    for path in candidates:
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rt") as f:
                    return KernelConfig(path, parse(f.read()))
            with open(path) as f:
                return KernelConfig(path, parse(f.read()))
        except OSError:
            continue
    return KernelConfig("")
