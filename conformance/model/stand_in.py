"""Which model exporter shadows a target's exporter: its kind's stand-in for the target's kernel.

``stand_in_for(exporters, kernel=release)`` picks, per kind, the profile of
the release range that holds ``release`` (kernel_ranges.py).  A kernel
outside the releases the table was checked against gets the nearest range
and a note saying so; the notes are on the returned ``StandIn`` and are
issued once per process as a ``StandInNote`` warning, so that a report never
compares silently against a guess.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable

from conformance.errors import UnknownExporter
from conformance.model.kernel_ranges import (
    CHANGES,
    CORE,
    LAST_UPSTREAM,
    NEWEST_CHECKED,
    OLDEST_CHECKED,
    Release,
    Segment,
)
from conformance.model.profiles import (
    KIND_PROFILES,
    PROFILES,
    STAND_INS,
    ExporterProfile,
    reference_exporter_for,
)
from conformance.records import ExporterInfo


class StandInNote(UserWarning):
    """The stand-in for a kernel the version table was not checked against is a best guess."""


_NOTED: set[str] = set()  # notes already issued in this process


@dataclass(frozen=True)
class Choice:
    """The stand-in of one kind for one kernel, and why it is only approximate (``note``)."""

    kind: str
    profile: ExporterProfile
    segment: Segment | None  # None: the kernel release was not understood
    note: str = ""


def choose(kind: str, kernel: str | None) -> Choice:
    """The stand-in profile for an exporter of ``kind`` on kernel release ``kernel``.

    ``None`` (the model itself, or a target that does not say) is the 6.1
    stand-in, as before release ranges existed.
    """
    if kind not in STAND_INS:
        reference_exporter_for(kind)  # raises the usual UnknownExporter
        raise UnknownExporter(f"no stand-in table for exporter kind {kind!r}")
    ranges = STAND_INS[kind]
    if kernel is None:
        return Choice(kind, KIND_PROFILES[kind], None)
    release = Release.parse(kernel)
    if release is None:
        return Choice(
            kind,
            KIND_PROFILES[kind],
            None,
            f"kernel release {kernel!r} not understood: {kind} is compared with the 6.1 "
            f"stand-in ({KIND_PROFILES[kind].exporter_name})",
        )
    covering = [(s, p) for s, p in ranges if s.covers(release)]
    if not covering:  # a series that never existed (5.20): the newest range before it
        covering = [(s, p) for s, p in ranges if s.first is None or s.first <= release.series]
    segment, profile = covering[-1]
    notes: list[str] = []
    series = release.series
    last = LAST_UPSTREAM.get(kind)
    if last is not None and series > last:
        notes.append(
            f"{kind} left mainline after {last}: on {release} it is an out-of-tree copy, "
            f"compared with the {last} stand-in ({profile.exporter_name})"
        )
    elif series > NEWEST_CHECKED:
        notes.append(
            f"kernel {release} is newer than {NEWEST_CHECKED}, the newest series the stand-ins "
            f"were checked against: {kind} is compared with the {segment.label} stand-in "
            f"({profile.exporter_name}); an upstream change since {NEWEST_CHECKED} would show "
            "as a divergence"
        )
    elif series < OLDEST_CHECKED:
        notes.append(
            f"kernel {release} is older than {OLDEST_CHECKED}, the oldest series the stand-ins "
            f"were checked against: {kind} is compared with the {segment.label} stand-in "
            f"({profile.exporter_name})"
        )
    for c in CHANGES:
        if c.kind in (kind, CORE) and not c.certain(release):
            checked = ", ".join(
                f"{s}.{point} {'still has it' if there else 'no longer'}"
                for s, (point, there) in c.checked.items()
            )
            notes.append(
                f"{kind} on {release}: '{c.summary}' was removed by the stable backport of "
                f"{c.backport} at point releases not all known here (checked: {checked}); "
                f"compared as {'before' if c.covers(release) else 'after'} it "
                f"({profile.exporter_name})"
            )
    note = "; ".join(notes)
    return Choice(kind, profile, segment, note)


@dataclass
class StandIn:
    """Maps an exporter name of a target to the model exporter that shadows it (a callable).

    A real exporter is compared with its kind's stand-in for ``kernel``; a
    model exporter (a faulty profile) with the 6.1 reference of the kind it
    is built on.
    """

    kinds: dict[str, str]
    kernel: str | None = None
    choices: dict[str, Choice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in sorted(set(self.kinds.values()) - {"model"}):
            if kind in STAND_INS:
                self.choices[kind] = choose(kind, self.kernel)

    @property
    def notes(self) -> list[str]:
        return [c.note for c in self.choices.values() if c.note]

    def __call__(self, name: str) -> str:
        kind = self.kinds.get(name, "heap")
        if kind == "model":
            kind = PROFILES[name].kind if name in PROFILES else "heap"
            return reference_exporter_for(kind)
        choice = self.choices.get(kind)
        return choice.profile.exporter_name if choice else reference_exporter_for(kind)


def stand_in_for(exporters: Iterable[ExporterInfo], kernel: str | None = None) -> StandIn:
    """The ``StandIn`` for a target's exporters on kernel release ``kernel`` (TargetInfo.kernel).

    Notes (a kernel outside the checked releases) are issued once per process
    as ``StandInNote`` warnings.
    """
    stand_in = StandIn({e.name: e.kind for e in exporters}, kernel)
    for note in stand_in.notes:
        if note not in _NOTED:
            _NOTED.add(note)
            warnings.warn(StandInNote(note), stacklevel=2)
    return stand_in
