"""Line a target's answers to bad inputs up with the reference model's, per input and category.

Two findings per input: the errno differs from the model's (``Mismatch``),
and an input that breaks a rule by construction was accepted (errno 0; an
exporter is wrong there whatever the model says).  Kernel complaints
(WARN, BUG, DMA-API debug errors) are counted per batch, with the category
the batch held.  ``Tally.record()`` is what the run's summary keeps per
exporter (``bad_input`` in conformance-summary.json); ``Tally.failure()``
the message of a failing case, first disagreements first.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from conformance.bad_input.inputs import Input

# the user property a case puts its tally in, and the summary reads (fixtures/run_summary.py)
SUMMARY_PROPERTY = "dmabuf_bad_input"
SHOWN_PER_CATEGORY = 3
SHOWN_IN_ALL = 30


def errno_name(err: int) -> str:
    return "0 (accepted)" if err == 0 else errno.errorcode.get(err, str(err))


@dataclass(frozen=True)
class Mismatch:
    input: Input
    target: int  # the errno the target answered, 0 when it accepted
    model: int

    def line(self, target_name: str = "kernel") -> str:
        return (
            f"[{self.input.category}] {self.input.describe()}: {target_name} "
            f"{errno_name(self.target)}, model {errno_name(self.model)}"
        )


@dataclass
class CategoryTally:
    inputs: int = 0
    mismatches: int = 0
    accepted_invalid: int = 0
    complaints: int = 0  # batches after which the kernel had warned

    def to_json(self) -> dict[str, int]:
        return {
            "inputs": self.inputs,
            "mismatches": self.mismatches,
            "accepted_invalid": self.accepted_invalid,
            "complaints": self.complaints,
        }


@dataclass
class Tally:
    """Everything one exporter's run of bad inputs showed."""

    exporter: str
    model: str  # the model exporter that answered for reference
    seed: int
    categories: dict[str, CategoryTally] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)  # the first ones of each category
    accepted: list[Mismatch] = field(default_factory=list)  # invalid inputs accepted (first ones)
    warnings: int = 0
    dma_api_errors: int = 0
    complaint_excerpts: list[str] = field(default_factory=list)
    target_seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def inputs(self) -> int:
        return sum(c.inputs for c in self.categories.values())

    @property
    def mismatch_count(self) -> int:
        return sum(c.mismatches for c in self.categories.values())

    @property
    def accepted_count(self) -> int:
        return sum(c.accepted_invalid for c in self.categories.values())

    @property
    def ok(self) -> bool:
        return not (self.mismatch_count or self.accepted_count or self.warnings
                    or self.dma_api_errors)  # fmt: skip

    def add(self, batch: list[Input], target: list[int], model: list[int]) -> None:
        """One batch's answers from the target and from the model, input by input."""
        if not len(batch) == len(target) == len(model):
            raise ValueError(
                f"{len(batch)} inputs but {len(target)} target and {len(model)} model answers"
            )
        for inp, got, want in zip(batch, target, model):
            cat = self.categories.setdefault(inp.category, CategoryTally())
            cat.inputs += 1
            if got != want:
                cat.mismatches += 1
                if cat.mismatches <= SHOWN_PER_CATEGORY:
                    self.mismatches.append(Mismatch(inp, got, want))
            if inp.must_fail and got == 0:
                cat.accepted_invalid += 1
                if cat.accepted_invalid <= SHOWN_PER_CATEGORY:
                    self.accepted.append(Mismatch(inp, got, want))

    def complained(self, categories: set[str], warnings: int, dma_api_errors: int,
                   excerpt: str) -> None:  # fmt: skip
        """The kernel warned after a batch of inputs of ``categories``."""
        self.warnings += warnings
        self.dma_api_errors += dma_api_errors
        for name in categories:
            self.categories.setdefault(name, CategoryTally()).complaints += 1
        if excerpt:
            self.complaint_excerpts.append(f"after a batch of {', '.join(sorted(categories))}:\n"
                                           f"{excerpt}")  # fmt: skip

    def record(self) -> dict[str, Any]:
        """The per-exporter summary entry (JSON)."""
        return {
            "model": self.model,
            "seed": self.seed,
            "inputs": self.inputs,
            "mismatches": self.mismatch_count,
            "accepted_invalid": self.accepted_count,
            "warnings": self.warnings,
            "dma_api_errors": self.dma_api_errors,
            "seconds": round(self.target_seconds, 1),
            "model_seconds": round(self.model_seconds, 1),
            "categories": {k: v.to_json() for k, v in sorted(self.categories.items())},
            "first_mismatches": [m.line() for m in self.mismatches[:SHOWN_IN_ALL]],
        }

    def failure(self) -> str:
        """What a vendor reads: counts, per category, then the first inputs that went wrong."""
        lines = [
            f"{self.exporter}: {self.inputs} bad inputs (seed {self.seed}): "
            f"{self.mismatch_count} answered with another errno than {self.model}, "
            f"{self.accepted_count} invalid by construction were accepted; the kernel "
            f"complained {self.warnings} time(s), DMA-API debug {self.dma_api_errors} error(s)"
        ]
        bad = {k: v for k, v in sorted(self.categories.items())
               if v.mismatches or v.accepted_invalid or v.complaints}  # fmt: skip
        for name, c in bad.items():
            lines.append(
                f"  {name}: {c.mismatches} of {c.inputs} disagree, {c.accepted_invalid} invalid "
                f"accepted, {c.complaints} batch(es) with kernel complaints"
            )
        shown = (self.accepted + [m for m in self.mismatches if m not in self.accepted])
        if shown:
            lines.append("first disagreements (input: target errno, model errno):")
            lines += [f"  {m.line('target')}" for m in shown[:SHOWN_IN_ALL]]
        for excerpt in self.complaint_excerpts[:3]:
            lines.append("kernel log " + excerpt)
        return "\n".join(lines)
