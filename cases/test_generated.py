"""Generated scenarios: random operation sequences, run on the target and the model in lockstep.

A hypothesis state machine (``fixtures/generated_machine.py``) picks Target
operations on a few dma-bufs and the fds, user mappings, attachments and
vmaps made of them, and runs each on the target under test and on the
reference model standing in for the same kind of exporter
(``conformance.lockstep.CheckedTarget``).  Each difference is classed by the
contract, the operation and the kind of difference
(``conformance/generated/classes.py``): ``sync-dma-calls``, ``mmap-errno``,
``zero-fill-data``, ``sync-direction``...  Each class is its own result,
``GEN-001[<class>]``, with the shortest sequence that shows it, and the
search goes on with the class set aside, so one known bug never hides
another, and a waiver for one class never covers another.

The sequences keep the ownership protocol that the other cases keep (CPU
access inside SYNC or begin/end_cpu_access brackets and never while a device
has the buffer mapped; one device mapping at a time), so a correct exporter
on a coherent or a non-coherent machine never differs from the model: every
difference is a contract the exporter broke.

Source: the issue's "generated scenarios" (issues 1 and 11); the rules of
every other case family, combined in orders no hand-written case tries.
"""

from __future__ import annotations

import pytest

from conformance.lockstep import unchecked
from conformance.skips import NOT_CHECKED

pytest.importorskip("hypothesis")
from conformance.generated.findings import MAX_CLASSES  # noqa: E402
from fixtures.generated_machine import explore  # noqa: E402
from fixtures.subresults import record_own_result, record_subresult  # noqa: E402

pytestmark = pytest.mark.generated

CASE = "GEN-001"


@pytest.mark.case(CASE)
def test_random_operation_sequences_agree_with_the_model(
    request, target, exporter, generated_budget
):
    """Random sequences of operations give the same results as the reference model.

    Contract: every rule of every family at once, in orders no written case
    tries (dups closed under mappings, mappings at offsets and past the end,
    attachments left over, vmaps kept across device maps, stray SYNC flags).
    A failing exporter differs from the model at some step; each class of
    difference is reported as ``GEN-001[<class>]`` with the shortest
    sequence found, as readable steps and as a ready-to-run case.

    ``GEN-001`` itself is the search: it passes when the search ran its
    budget with every instrument there, whatever classes it found (those
    fail apart).  What it can see depends on the target's instruments: the
    user-space operations are compared everywhere; the kernel-side ones need
    the probe, the exporter's DMA calls its event log, stale device data a
    bouncing non-coherent device, a DMA-API misuse DMA-API debug.  Where one
    is missing the search is "not checked", naming what was missing, while
    the classes it did find still fail.  (Not a ``needs`` marker: that would
    stop the search on a board without DMA-API debug, where its user-space
    half still finds bugs.)
    """
    real = unchecked(target)
    info = real.info()
    missing = [
        why
        for name in ("probe", "dma_event_log", "swiotlb_bounce", "dma_api_debug")
        if (why := info.missing_instrument(name))
    ]
    result = explore(real, exporter.name, generated_budget)
    findings = result.findings
    for finding in sorted(findings.found.values(), key=lambda f: f.name):
        case_id = f"{CASE}[{finding.name}]"
        record_subresult(
            request.node, case_id, "failed", finding.message(case_id),
            attachments={
                f"{case_id}: minimal sequence": finding.detail,
                f"{case_id}: ready-to-run reproducer": finding.program.render(case_id),
            },
        )  # fmt: skip
    timing = (
        f"explored {findings.sequences} sequences in {findings.explore_seconds:.1f} s; "
        f"shrinking took {findings.shrink_seconds:.1f} s"
    )
    classes = [f"{CASE}[{name}]" for name in sorted(findings.found)]
    found = f"; found {len(classes)} class(es): {', '.join(classes)}" if classes else ""
    if not result.complete:
        own = ("skipped", f"{NOT_CHECKED}the search stopped after {MAX_CLASSES} divergence "
               f"classes; more may hide behind them ({timing}{found})")  # fmt: skip
    elif missing:
        own = ("skipped", f"{NOT_CHECKED}part of what the sequences check could not fail "
               f"here: {'; '.join(missing)} ({timing}{found})")  # fmt: skip
    else:
        own = ("passed", f"{timing}{found}")
    record_own_result(request.node, *own)
    if classes:
        pytest.fail(
            f"{len(classes)} divergence class(es), each its own result: {', '.join(classes)} "
            f"({timing})\n\n" + "\n\n".join(
                findings.found[name].message(f"{CASE}[{name}]") for name in sorted(findings.found)
            ),
            pytrace=False,
        )  # fmt: skip
    if own[0] == "skipped":
        pytest.skip(own[1])
