"""Divergence classes: which contract a generated sequence found broken, and how it showed.

A class is ``<contract or operation>-<kind>``, named so that one bug gives one
class however the sequence around it looked, and two unrelated bugs give two:

* ``<operation>-errno``: the target and the model returned different errnos
  (``mmap-errno``: an mmap one of them refused);
* ``<operation>-dma-calls``: the exporter made other DMA calls than the model
  after the operation (a sync, a map, a CMO missing or unexpected);
* ``<operation>-result``: a size, an fdinfo field, an sg list's length differ;
* ``counter-<name>``: a kernel-side counter (``kmap_count``, ``vmap_count``, ...)
  differs; the counter names the contract, not the operation that moved it;
* data read back differs: by the contract that carries the data from its last
  writer to the reader.  A page nobody wrote since allocation is the zero-fill
  contract (``zero-fill-data``, whoever reads it); otherwise
  ``<writer>-to-<reader>-data`` (``device-to-cpu-data``: the CPU read stale data a
  device wrote, the begin_cpu_access/invalidate contract);
* a kernel complaint (DMA-API debug, a WARNING): by what it says, not where it
  came from (``sync-direction``, ``unmap-direction``, ``map-segment``); other
  warnings are ``<operation>-warning``.

Operations are the generated rules' names (``sync`` is a raw DMA_BUF_IOCTL_SYNC,
``cpu-read`` a bracketed read through a user mapping, ``map``/``unmap`` a
device's dma_buf_map/unmap_attachment, ...; ``fixtures/generated_machine.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# What read operation each reader is (the Target operation that returns data).
READERS = {"cpu_read": "cpu", "device_read": "device", "vmap_read": "vmap"}
NEVER_WRITTEN = "alloc"  # a page's writer until someone writes it

# DMA-API debug's reports (kernel/dma/debug.c) and the model's wording of the same
# (conformance/model/dma.py), most specific first.
_COMPLAINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("unmap-direction", re.compile(r"frees DMA memory with different direction|"
                                   r"dma_unmap\w* .*direction \w+ differs", re.I)),
    ("unmap-size", re.compile(r"frees DMA memory with different size", re.I)),
    ("sync-direction", re.compile(r"syncs DMA memory with different direction|"
                                  r"syncs with direction|syncs device (read|write)-only", re.I)),
    ("map-segment", re.compile(r"segment longer|across boundary|crosses? .*boundary", re.I)),
    ("unmapped-call", re.compile(r"has not allocated|not mapped|not mapped before", re.I)),
    ("map-twice", re.compile(r"already mapped", re.I)),
)
# A WARNING raised *by* DMA-API debug: its text line is classified above; the
# WARNING line itself (``at kernel/dma/debug.c:... check_sync``) is the fallback.
_DEBUG_WARNING = re.compile(r"kernel/dma/debug\.c|check_sync|check_unmap|debug_dma_", re.I)
_DEBUG_FUNCTIONS = (("check_sync", "sync-direction"), ("check_unmap", "unmap-direction"))
_DMA_API_LINE = re.compile(r"DMA-API", re.I)
_WARNING_LINE = re.compile(
    r"WARNING: |BUG: |kernel BUG at|Oops|general protection fault|Unable to handle kernel"
)


@dataclass(frozen=True)
class Difference:
    """How one step of a generated sequence differed, reduced to what names its class."""

    operation: str  # the generated operation (rule) that was running, e.g. "sync"
    kind: str  # errno | data | dma-calls | result | counter | complaint | warning
    detail: str = ""  # data: "<writer>-to-<reader>"; counter: its name; complaint: its class

    @property
    def name(self) -> str:
        if self.kind == "data":
            return f"{self.detail}-data"
        if self.kind == "counter":
            return f"counter-{self.detail.replace('_', '-')}"
        if self.kind == "complaint":
            return self.detail
        return f"{self.operation}-{self.kind}"


def data_contract(writer: str, reader: str) -> str:
    """``zero-fill`` for a page nobody wrote since allocation, else ``<writer>-to-<reader>``."""
    return "zero-fill" if writer == NEVER_WRITTEN else f"{writer}-to-{reader}"


def first_difference(target: bytes, model: bytes) -> int:
    """The index of the first byte that differs (the shorter length when one is a prefix)."""
    for i, (a, b) in enumerate(zip(target, model)):
        if a != b:
            return i
    return min(len(target), len(model))


def step_difference(
    operation: str, op: str, target_status: str, model_status: str,
    target_value: Any, model_value: Any, writer_at: Any = None, note: str = "",
) -> Difference:
    """The difference of one compared step (``conformance.lockstep.Observation``).

    ``writer_at(index)`` gives, for a read, the last writer of the page holding
    byte ``index`` of what was read (``NEVER_WRITTEN`` for a fresh page).
    ``note`` is the comparison's sentence: of the counters that differ, the
    class names the first one it judged (it leaves some to the cases).
    """
    if target_status != model_status:
        return Difference(operation, "errno")
    if op in READERS and isinstance(target_value, bytes) and isinstance(model_value, bytes):
        writer = writer_at(first_difference(target_value, model_value)) if writer_at else None
        return Difference(operation, "data", data_contract(writer or NEVER_WRITTEN, READERS[op]))
    if op == "dma_events":
        return Difference(operation, "dma-calls")
    if op == "counters" and isinstance(target_value, dict) and isinstance(model_value, dict):
        differing = sorted(k for k in set(target_value) & set(model_value)
                           if target_value[k] != model_value[k]
                           and (not note or f"{k}:" in note))  # fmt: skip
        if differing:
            return Difference(operation, "counter", differing[0])
    return Difference(operation, "result")


def complaint_classes(log_excerpt: str, warnings: int, dma_api_errors: int,
                      operation: str) -> list[str]:  # fmt: skip
    """The classes of one health report's complaints, sorted, without repeats.

    DMA-API debug reports go by what they say; when only the WARNING line of
    such a report is there (``at kernel/dma/debug.c ... check_sync``), by the
    function that raised it.  Any other kernel warning is
    ``<operation>-warning``.  A count without a line of text (the excerpt was
    cut) still gives a class: ``dma-debug`` or ``<operation>-warning``.
    """
    said: set[str] = set()  # from a report's text
    raised_by: set[str] = set()  # from the WARNING line of a DMA-API debug report
    other: set[str] = set()
    for line in log_excerpt.splitlines():
        named = next((name for name, pattern in _COMPLAINTS if pattern.search(line)), None)
        if named is not None:
            said.add(named)
        elif _DEBUG_WARNING.search(line):
            raised_by.add(next((c for f, c in _DEBUG_FUNCTIONS if f in line), "dma-debug"))
        elif _DMA_API_LINE.search(line):
            said.add("dma-debug")
        elif _WARNING_LINE.search(line):
            other.add(f"{operation}-warning")
    debug = said or raised_by
    if len(debug) > 1:
        debug.discard("dma-debug")  # the unnamed line of a report named by another
    if dma_api_errors and not debug:
        debug = {"dma-debug"}
    if warnings and not (debug or other):
        other = {f"{operation}-warning"}
    return sorted(debug | other)
