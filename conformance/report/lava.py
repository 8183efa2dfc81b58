"""A run's results as LAVA test-case signals, and the names LAVA accepts.

``python -m conformance.report lava --reports-dir DIR`` prints one line per
case of ``conformance-summary.json``::

    <set> <case> <result>

which the Lava-Test Test Definition (``lava/conformance.yaml``) turns into
``lava-test-set start <set>`` (when the set changes) and ``lava-test-case
<case> --result <result>``.  It is stdlib only: it runs on the DUT.

Names.  LAVA's dispatcher takes a case name up to white space, ``=`` or
``>`` (the signal is ``<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=... RESULT=...>``)
and makes a directory of it, and its server's result URLs take only
``[-_a-zA-Z0-9.+]`` for a case and ``[-_a-zA-Z0-9.]`` for a set.  Case ids
carry brackets (``CMO-002[TO_DEVICE]``) and exporters a colon
(``heap:system``), so both are mapped, reversibly:

* the head (a case id's base, an exporter's kind) is kept as it is, and must
  already be safe (every id of the suite is: ``FAMILY-NNN``, ``heap``);
* the first ``.`` stands for ``[`` (the closing ``]`` is implied) or ``:``;
* in the rest, every other character is written ``.XX``, the hex of each of its
  UTF-8 bytes, so any later ``.`` starts an escape.

``CMO-002[TO_DEVICE]`` is ``CMO-002.TO_DEVICE``, ``ALLOC-002[3-pages+17B]`` is
``ALLOC-002.3-pages+17B``, ``heap:system`` is ``heap.system``.

Results.  ``passed``, ``failed`` and ``skipped`` are LAVA's ``pass``, ``fail``
and ``skip``; ``error`` (the case could not be judged) is LAVA's ``unknown``.
A waived failure is still a failure, so it is ``fail``, but in a set of its
own, ``<exporter set>-waived``: LAVA has no waived result, and a waived
failure reported as ``pass`` or ``skip`` would say the exporter did something
it did not.  Per set, the counts are pytest's: the exporter's set has pytest's
failed, and its ``-waived`` set pytest's xfailed.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

from conformance.summary import Summary

CASE_SAFE = frozenset(string.ascii_letters + string.digits + "-_+")
SET_SAFE = frozenset(string.ascii_letters + string.digits + "-_")
WAIVED_SUFFIX = "-waived"
RESULTS = {"passed": "pass", "failed": "fail", "skipped": "skip", "error": "unknown"}

_PARAMETRIZED = re.compile(r"([^\[]+)\[(.*)\]", re.S)
_HEX = frozenset("0123456789ABCDEF")


class LavaNameError(ValueError):
    """A case id or exporter that has no LAVA name, or a LAVA name that is not one of ours."""


def _escape(text: str, safe: frozenset[str]) -> str:
    return "".join(c if c in safe else "".join(f".{b:02X}" for b in c.encode("utf-8"))
                   for c in text)


def _unescape(text: str, safe: frozenset[str], name: str) -> str:
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == ".":
            pair = text[i + 1:i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise LavaNameError(f"{name!r}: '.' must be followed by two upper-case hex "
                                    f"digits, got {text[i:i + 3]!r}")
            out.append(int(pair, 16))
            i += 3
        elif c in safe:
            out += c.encode("ascii")
            i += 1
        else:
            raise LavaNameError(f"{name!r}: {c!r} is not allowed in a LAVA name")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise LavaNameError(f"{name!r}: its escapes are not UTF-8") from None


def _check_head(head: str, safe: frozenset[str], what: str, original: str) -> None:
    bad = sorted(set(head) - safe)
    if not head or bad:
        marks = "".join(sorted(safe - set(string.ascii_letters + string.digits)))
        found = f" (found {' '.join(map(repr, bad))})" if bad else ""
        raise LavaNameError(f"{what} {original!r} has no LAVA name: its head {head!r} must be "
                            f"non-empty and use only letters, digits and {marks}{found}")


def case_name(case_id: str) -> str:
    """``CMO-002[TO_DEVICE]`` -> ``CMO-002.TO_DEVICE`` (see the module doc)."""
    m = _PARAMETRIZED.fullmatch(case_id)
    head, param = (m.group(1), m.group(2)) if m else (case_id, None)
    _check_head(head, CASE_SAFE, "case id", case_id)
    return head if param is None else f"{head}.{_escape(param, CASE_SAFE)}"


def case_id_of(name: str) -> str:
    """The case id a LAVA case name stands for: the inverse of :func:`case_name`."""
    head, dot, rest = name.partition(".")
    _check_head(head, CASE_SAFE, "LAVA case name", name)
    return f"{head}[{_unescape(rest, CASE_SAFE, name)}]" if dot else head


def set_name(exporter: str, waived: bool = False) -> str:
    """``heap:system`` -> ``heap.system``; its waived failures go to ``heap.system-waived``."""
    head, colon, rest = exporter.partition(":")
    _check_head(head, SET_SAFE, "exporter", exporter)
    name = f"{head}.{_escape(rest, SET_SAFE)}" if colon else head
    if name.endswith(WAIVED_SUFFIX):
        raise LavaNameError(f"exporter {exporter!r} has no LAVA set name: "
                            f"'{WAIVED_SUFFIX}' ends the set of its waived failures")
    return name + WAIVED_SUFFIX if waived else name


def exporter_of(name: str) -> tuple[str, bool]:
    """The exporter a LAVA set name stands for, and whether it is its waived set."""
    waived = name.endswith(WAIVED_SUFFIX)
    base = name[: -len(WAIVED_SUFFIX)] if waived else name
    head, dot, rest = base.partition(".")
    _check_head(head, SET_SAFE, "LAVA set name", name)
    return (f"{head}:{_unescape(rest, SET_SAFE, name)}" if dot else head), waived


@dataclass(frozen=True)
class Signal:
    """One ``lava-test-case`` call: in test set ``set``, case ``case`` with ``result``."""

    set: str
    case: str
    result: str

    def line(self) -> str:
        return f"{self.set} {self.case} {self.result}"


def signals(summary: Summary) -> list[Signal]:
    """Every case result of the run, grouped by set (each set's lines together)."""
    out: list[Signal] = []
    for exporter in sorted(summary.exporters):
        results = summary.exporters[exporter]
        plain, waived = [], []
        for case_id in sorted(results):
            outcome = results[case_id]
            if outcome not in RESULTS:
                raise LavaNameError(f"{exporter} {case_id}: unknown outcome {outcome!r}")
            if summary.is_waived(exporter, case_id):
                waived.append(Signal(set_name(exporter, waived=True), case_name(case_id), "fail"))
            else:
                plain.append(Signal(set_name(exporter), case_name(case_id), RESULTS[outcome]))
        out += plain + waived
    return out


def render_lava(summary: Summary) -> str:
    return "".join(s.line() + "\n" for s in signals(summary))


def parse_lines(text: str, where: str | Path = "<signals>") -> list[Signal]:
    """The lines :func:`render_lava` printed, read back (what the test definition reads)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if len(fields) != 3 or fields[2] not in RESULTS.values():
            raise LavaNameError(f"{where}:{n}: expected '<set> <case> <pass|fail|skip|unknown>',"
                                f" got {line!r}")
        out.append(Signal(*fields))
    return out
