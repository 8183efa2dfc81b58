"""Waivers: failures a vendor declares known and accepted, with a reason.

A waiver file is JSON (stdlib only: the suite also runs on board images)::

    {"waivers": [
      {"case": "CMO-002", "reason": "SoC erratum 1234: coherent port drops clean",
       "exporter": "heap:vendor-*", "kernel": "6.1.*"}
    ]}

``case`` is a case id (``CMO-002`` covers every parametrization such as
``CMO-002[TO_DEVICE]``), a full id (``GEN-001[sync-direction]``: that one
result only, e.g. one class GEN-001 found) or a shell pattern matched against
the full id.
``exporter`` and ``kernel`` are optional shell patterns; on a board farm the
results of an exporter are ``exporter@place`` (``heap:system@imx8-3``), and
``exporter`` matches either that or the plain name; ``kernel`` is matched
against the kernel string the target reports (``uname -r`` first).  A waiver
only ever turns a *failed* case into a waived one: errors (the case could not
be judged) and skips stay what they are.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conformance.errors import SetupError

_FIELDS = ("case", "reason", "exporter", "kernel")
BOARD_SEP = "@"  # exporter@board: one exporter's results on one board of a farm


def exporter_key(exporter: str, board: str) -> str:
    """What a result is filed under: the exporter, on a farm qualified by its board."""
    return f"{exporter}{BOARD_SEP}{board}" if board else exporter


def split_exporter_key(key: str) -> tuple[str, str]:
    """``exporter_key``'s inverse: the exporter, and the board ("" off a farm)."""
    exporter, _, board = key.partition(BOARD_SEP)
    return exporter, board


class WaiverFileError(SetupError):
    """The waiver file is missing, not JSON, or has a malformed entry."""


@dataclass(frozen=True)
class Waiver:
    case: str
    reason: str
    exporter: str = "*"
    kernel: str = "*"
    index: int = 0  # position in the file, so a report can point at the entry

    def matches(self, exporter: str, case_id: str, kernel: str) -> bool:
        base = case_id.split("[", 1)[0]
        # The full id spelt out matches as such: in a shell pattern "[...]" would be a
        # character class ("GEN-001[sync-direction]" names one GEN-001 class, no other).
        case_ok = self.case in (base, case_id) or fnmatch.fnmatchcase(case_id, self.case)
        return (
            case_ok
            and any(fnmatch.fnmatchcase(name, self.exporter)
                    for name in (exporter, split_exporter_key(exporter)[0]))
            and fnmatch.fnmatchcase(kernel, self.kernel)
        )

    def describe(self) -> str:
        scope = []
        if self.exporter != "*":
            scope.append(f"exporter {self.exporter}")
        if self.kernel != "*":
            scope.append(f"kernel {self.kernel}")
        where = f" ({', '.join(scope)})" if scope else ""
        return f"waiver #{self.index + 1} {self.case}{where}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WaiverSet:
    waivers: tuple[Waiver, ...] = ()
    source: str = ""

    def match(self, exporter: str, case_id: str, kernel: str) -> Waiver | None:
        return next((w for w in self.waivers if w.matches(exporter, case_id, kernel)), None)

    def unused(self, used: set[int]) -> list[Waiver]:
        return [w for w in self.waivers if w.index not in used]


def parse_waivers(data: Any, source: str = "<waivers>") -> WaiverSet:
    """Validate a decoded waiver document; every problem names the entry and field."""
    entries = data.get("waivers") if isinstance(data, dict) else data
    if isinstance(data, dict) and set(data) - {"waivers"}:
        extra = ", ".join(sorted(set(data) - {"waivers"}))
        raise WaiverFileError(f"{source}: unknown top-level key(s) {extra}; expected 'waivers'")
    if not isinstance(entries, list):
        raise WaiverFileError(
            f"{source}: expected {{\"waivers\": [...]}} or a list of waivers, "
            f"got {type(entries).__name__}"
        )
    waivers = []
    for i, entry in enumerate(entries):
        where = f"{source}: waiver #{i + 1}"
        if not isinstance(entry, dict):
            raise WaiverFileError(f"{where}: expected an object, got {type(entry).__name__}")
        # An unknown key is most likely a typo ("exporters") that would
        # silently widen the waiver to every exporter: refuse it.
        unknown = set(entry) - set(_FIELDS)
        if unknown:
            raise WaiverFileError(
                f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(_FIELDS)}"
            )
        for key in _FIELDS:
            if key in entry and not isinstance(entry[key], str):
                raise WaiverFileError(f"{where}: '{key}' must be a string")
        for key in ("case", "reason"):
            if not entry.get(key, "").strip():
                raise WaiverFileError(f"{where}: '{key}' is required and must not be empty")
        waivers.append(
            Waiver(
                case=entry["case"].strip(),
                reason=entry["reason"].strip(),
                exporter=entry.get("exporter", "*").strip() or "*",
                kernel=entry.get("kernel", "*").strip() or "*",
                index=i,
            )
        )
    return WaiverSet(tuple(waivers), source)


def load_waivers(path: str | Path) -> WaiverSet:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WaiverFileError(f"cannot read waiver file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WaiverFileError(
            f"waiver file {path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}"
        ) from None
    return parse_waivers(data, str(path))
