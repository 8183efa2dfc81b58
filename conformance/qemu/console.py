"""Reading the guest's captured serial console: kernel complaints and panics.

The console file only grows; callers keep a byte offset (a "mark") and ask
what happened since.  The parser is pure (text in, records out) so it is unit
tested on canned console text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# A printk line may carry a "[    1.234567] " timestamp prefix.
_TS = r"^(?:\[\s*\d+\.\d+\]\s*)?"

# Lines that open a kernel complaint.  WARN: "WARNING: CPU: 0 PID: 1 at file:line func";
# BUG: "BUG: kernel NULL pointer dereference" / "kernel BUG at mm/..."; Oops: "Oops: 0002 [#1]".
_COMPLAINT = re.compile(
    _TS + r"(WARNING: CPU: \d+ PID: \d+|WARNING: .* at |------------\[ cut here \]------------"
    r"|BUG: |kernel BUG at |Oops: |Oops\b|general protection fault|Unable to handle kernel"
    r"|UBSAN: |KASAN: |INFO: task .* blocked)"
)
_CUT_HERE = re.compile(_TS + r"-+\[ cut here \]-+")
_PANIC = re.compile(_TS + r"Kernel panic - not syncing: ?(.*)$")
_END_TRACE = re.compile(_TS + r"---\[ end (?:Kernel panic|trace)")
# DMA-API debug reports "DMA-API: <driver> <dev>: <what>" inside a WARN.
_DMA_API = re.compile(_TS + r".*DMA-API: ")

EXCERPT_LINES = 40


@dataclass
class ConsoleReport:
    """What a stretch of console output says about the kernel's health."""

    warnings: int = 0  # WARN/BUG/Oops reports (one per report, not per line)
    dma_api_errors: int = 0  # "DMA-API:" lines
    panic: str | None = None  # the panic reason, if the kernel panicked
    excerpt: str = ""  # the lines around the first complaint (or the panic)
    complaint_lines: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.warnings or self.dma_api_errors or self.panic)


def parse_console(text: str, excerpt_lines: int = EXCERPT_LINES) -> ConsoleReport:
    """Count complaints in ``text`` and keep an excerpt starting at the first one."""
    lines = text.splitlines()
    report = ConsoleReport()
    first: int | None = None
    in_report = False  # inside one WARN/Oops block: its later lines are not new reports
    for i, line in enumerate(lines):
        if _PANIC.match(line):
            if report.panic is None:
                report.panic = _PANIC.match(line).group(1).strip()  # type: ignore[union-attr]
                if first is None:
                    first = max(0, i - excerpt_lines // 2)
            continue
        if _DMA_API.match(line):
            report.dma_api_errors += 1
            report.complaint_lines.append(line)
            if first is None:
                first = i
        if _END_TRACE.match(line):
            in_report = False
            continue
        if _CUT_HERE.match(line):
            in_report = False  # a new report starts even if the last one had no end marker
        if _COMPLAINT.match(line):
            # "cut here" precedes the WARNING line of the same report: count once.
            if not in_report:
                report.warnings += 1
                report.complaint_lines.append(line)
                if first is None:
                    first = i
            in_report = True
    if first is not None:
        report.excerpt = "\n".join(lines[first:first + excerpt_lines])
    return report


class ConsoleLog:
    """The console file of one guest, read incrementally by byte offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def since(self, mark: int) -> str:
        try:
            with self.path.open("rb") as f:
                f.seek(mark)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = EXCERPT_LINES, since: int = 0) -> str:
        return "\n".join(self.since(since).splitlines()[-lines:])
