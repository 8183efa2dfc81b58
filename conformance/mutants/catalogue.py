"""The kernel mutant catalogue: ``qemu/mutants/*.patch``, one weakened obligation each.

A mutant is a minimal patch against an upstream exporter the test kernel
builds, preceded by a header the sweep reads (``patch`` ignores everything
before the first ``--- a/`` line)::

    Mutant: heap-system-no-zero-order4
    Exporter: heap:system
    Family: zero_fill
    Callback: allocate
    Obligation: every page handed out is zeroed, in every page order
    Description: alloc_largest_available() skips clearing order-4 pages
    Seen-by: data
    Equivalent:
    CI: yes

``Equivalent`` carries the argument why no test can see the mutant (then the
sweep still runs it, and a kill means the argument is wrong).  ``CI: yes``
puts it in the subset ``tox`` runs, one per family.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from conformance.errors import SetupError
from conformance.qemu.kernel import REPO_ROOT

MUTANT_DIR = REPO_ROOT / "qemu" / "mutants"
REQUIRED = ("Mutant", "Exporter", "Family", "Callback", "Description")
KNOWN = (*REQUIRED, "Obligation", "Seen-by", "Equivalent", "CI", "Kernels")
SEEN_BY = ("data", "errno", "probe", "dma_event_log", "dma_api_debug", "kmsg", "meminfo")

_HEADER_LINE = re.compile(r"^([A-Za-z-]+):\s*(.*)$")
_TOUCHED = re.compile(r"^\+\+\+ b/(\S+)", re.MULTILINE)
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


class CatalogueError(SetupError):
    """A mutant patch whose header or diff cannot be used; names the file and the field."""


@dataclass(frozen=True)
class Mutant:
    name: str
    exporter: str
    family: str
    callback: str
    description: str
    path: Path
    obligation: str = ""
    seen_by: tuple[str, ...] = ()
    equivalent: str = ""  # the argument why it is equivalent, "" when it is not
    ci: bool = False
    files: tuple[str, ...] = field(default=())  # the kernel files the diff changes
    digest: str = ""  # of the diff: an image built from it is cached by it

    @property
    def instrument_only(self) -> bool:
        """Only the DMA event log or DMA-API debug can see it (per its header)."""
        return bool(self.seen_by) and set(self.seen_by) <= {"dma_event_log", "dma_api_debug"}

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "exporter": self.exporter, "family": self.family,
            "callback": self.callback, "obligation": self.obligation,
            "description": self.description, "seen_by": list(self.seen_by),
            "equivalent": self.equivalent, "ci": self.ci, "files": list(self.files),
            "patch": str(self.path.relative_to(REPO_ROOT)) if self.path.is_relative_to(
                REPO_ROOT) else str(self.path),
        }


def parse_mutant(path: Path) -> Mutant:
    text = path.read_text(encoding="utf-8", errors="replace")
    head, sep, _ = text.partition("\n--- a/")
    if not sep:
        raise CatalogueError(f"{path}: no unified diff (no line starting with '--- a/')")
    fields: dict[str, str] = {}
    for lineno, line in enumerate(head.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _HEADER_LINE.match(line)
        if m is None:
            if line.startswith(("diff ", "index ")):
                continue  # git's own lines before the diff
            raise CatalogueError(f"{path}:{lineno}: not a 'Field: value' header line: {line!r}")
        key, value = m.group(1), m.group(2).strip()
        if key not in KNOWN:
            raise CatalogueError(f"{path}:{lineno}: unknown header field {key!r} "
                                 f"(known: {', '.join(KNOWN)})")
        fields[key] = value
    missing = [k for k in REQUIRED if not fields.get(k)]
    if missing:
        raise CatalogueError(f"{path}: header lacks {', '.join(missing)}")
    name = fields["Mutant"]
    if not _NAME.match(name):
        raise CatalogueError(f"{path}: mutant name {name!r} is not lower-case-with-dashes")
    seen_by = tuple(s.strip() for s in fields.get("Seen-by", "").replace(",", " ").split()
                    if s.strip())
    bad = [s for s in seen_by if s not in SEEN_BY]
    if bad:
        raise CatalogueError(f"{path}: Seen-by {bad} not among {', '.join(SEEN_BY)}")
    files = tuple(dict.fromkeys(_TOUCHED.findall(text)))
    if not files:
        raise CatalogueError(f"{path}: the diff changes no file (no '+++ b/PATH' line)")
    return Mutant(
        name=name, exporter=fields["Exporter"], family=fields["Family"],
        callback=fields["Callback"], description=fields["Description"], path=path,
        obligation=fields.get("Obligation", ""), seen_by=seen_by,
        equivalent=fields.get("Equivalent", ""),
        ci=fields.get("CI", "").lower() in ("yes", "true", "1"),
        files=files, digest=_digest(sep + text.partition(sep)[2]),
    )


def _digest(diff: str) -> str:
    # Of the diff only: a header edit (a description, CI: yes) keeps the built image.
    return hashlib.sha256(diff.encode()).hexdigest()[:16]


def load_catalogue(directory: Path = MUTANT_DIR) -> list[Mutant]:
    """Every mutant of the catalogue, sorted by name; names must be unique."""
    if not directory.is_dir():
        raise CatalogueError(f"no mutant catalogue at {directory}")
    mutants = [parse_mutant(p) for p in sorted(directory.rglob("*.patch"))]
    seen: dict[str, Path] = {}
    for m in mutants:
        if m.name in seen:
            raise CatalogueError(f"mutant {m.name!r} is defined twice: {seen[m.name]} and {m.path}")
        seen[m.name] = m.path
    return sorted(mutants, key=lambda m: m.name)


def select(mutants: list[Mutant], names: list[str] | None = None, *, ci: bool = False,
           exporter: str | None = None, family: str | None = None) -> list[Mutant]:
    """The mutants named (or all), narrowed to the CI subset / one exporter / one family."""
    chosen = mutants
    if names:
        by_name = {m.name: m for m in mutants}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise CatalogueError(f"no such mutant: {', '.join(unknown)} "
                                 f"(`python -m conformance.mutants list` lists them)")
        chosen = [by_name[n] for n in names]
    if ci:
        chosen = [m for m in chosen if m.ci]
    if exporter:
        chosen = [m for m in chosen if m.exporter == exporter]
    if family:
        chosen = [m for m in chosen if m.family == family]
    return chosen
