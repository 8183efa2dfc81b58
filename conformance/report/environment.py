"""What a run was made on, as Allure's ``environment.properties`` (and the Markdown header)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

# Guest architecture names as conformance.qemu.arch spells them -> QEMU binary suffix.
_QEMU_BINARY = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


def qemu_version(arch: str) -> str:
    """``QEMU emulator version 7.2.x`` of the host's system emulator, or "" when absent."""
    binary = shutil.which(f"qemu-system-{_QEMU_BINARY.get(arch, arch)}")
    if binary is None:
        return ""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.splitlines()[0].strip() if out else ""


def environment(
    target_info: dict[str, Any],
    exporters_found: list[str],
    exporters_tested: list[str],
    run: dict[str, Any] | None = None,
    boards: dict[str, dict[str, Any]] | None = None,
) -> dict[str, str]:
    """Allure's environment table; ``run`` is the summary's run record, when known.

    A farm's run (``boards``) adds a line per board: its kernel and labgrid resources,
    since one board's facts in ``target_info`` would not describe the others.
    """
    extra = dict(target_info.get("extra", {}))
    props = {
        "target": str(target_info.get("target", "")),
        "kernel": str(target_info.get("kernel", "")),
        "machine": str(target_info.get("machine", "")),
        "probe_loaded": str(target_info.get("probe_loaded", "")).lower(),
        "exporters_found": ", ".join(exporters_found),
        "exporters_tested": ", ".join(exporters_tested),
    }
    for name, inst in sorted(dict(target_info.get("instruments", {})).items()):
        state = "present" if inst.get("present") else "MISSING"
        detail = str(inst.get("detail", ""))
        props[f"instrument.{name}"] = f"{state}: {detail}" if detail else state
    for key in ("id", "started", "command", "kernel_build"):
        if run and run.get(key):
            props[f"run.{key}"] = str(run[key])
    if target_info.get("target") == "qemu" and "qemu_version" not in extra:
        extra["qemu_version"] = qemu_version(str(extra.get("qemu_arch", "x86_64")))
    for key, value in sorted(extra.items()):
        props[key] = str(value)
    for name, board in sorted((boards or {}).items()):
        props[f"board.{name}"] = "; ".join(
            f"{k} {board[k]}" for k in ("kernel", "labgrid_coordinator", "labgrid_resources")
            if board.get(k))
    return {k: v for k, v in props.items() if v}


def _escape(text: str) -> str:
    # java.util.Properties rules: backslash escapes, keys without separators.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def write_environment(results_dir: Path, props: dict[str, str]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "environment.properties"
    lines = [
        f"{_escape(k).replace(' ', '_').replace('=', '_')}={_escape(v)}" for k, v in props.items()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
