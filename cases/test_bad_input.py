"""Bad input at volume: ten thousand generated invalid arguments per exporter.

Source: issue 11 section 4; drivers/dma-buf/{dma-buf,dma-heap,udmabuf}.c,
drivers/gpu/drm/{drm_prime,drm_gem,drm_dumb_buffers}.c and mm/mmap.c of 6.1
(each rule is cited where the generator breaks it, conformance/bad_input/,
and where the model answers it, conformance/targets/model_parts/bad_input.py);
../shared/notes/uapi-facts.md; the kselftest, IGT and ion-unit-tests bad-input
checks, which this covers with generated values instead of a few fixed ones.
"""

from __future__ import annotations

import json
import time
from itertools import groupby

import pytest

from conformance.bad_input.compare import SUMMARY_PROPERTY, Tally
from conformance.bad_input.generator import UDMABUF_LIST_LIMIT, UDMABUF_SIZE_LIMIT, generate
from conformance.errors import GuestError, KernelError, NotAvailableOnTarget
from conformance.lockstep import unchecked
from conformance.model import stand_in_for
from conformance.model.memory import PAGE_SIZE as MODEL_PAGE_SIZE
from conformance.skips import not_checked
from conformance.targets.model import ModelTarget
from fixtures.plugin import contract_kind

pytestmark = [pytest.mark.uapi, pytest.mark.applies_to("heap", "udmabuf", "vgem")]

INPUTS = 10_000  # per exporter (issue 11: "at least 10,000 per exporter")
BATCH = 500  # inputs per round trip; the kernel's health is read after each batch


def _mirror_udmabuf_limits(real, reference) -> None:
    """Give the reference model the udmabuf limits the kernel applies now.

    The generator aims at udmabuf.c's defaults; a kernel whose module
    parameters were changed answers by its own, and so must the model.
    """
    defaults = {"list_limit": UDMABUF_LIST_LIMIT, "size_limit_mb": UDMABUF_SIZE_LIMIT >> 20}
    for name, default in defaults.items():
        try:
            value = str(real.module_param("udmabuf", name)).strip()
            if int(value) != default:
                reference.set_module_param("udmabuf", name, value)
        except (AttributeError, NotAvailableOnTarget, KernelError, ValueError):
            return  # the kernel's limits cannot be read: the defaults are assumed


@pytest.mark.case("BADIN-001")
def test_bad_input_gets_the_reference_errno(target, exporter, page_size, generated_budget,
                                            request):  # fmt: skip
    """Generated invalid arguments get the reference model's errno, and no kernel complaint.

    Contract: every ioctl, mmap and lseek of the exporter's uapi refuses
    an argument that breaks its rules with the errno the 6.1 code gives
    (flags and fd_flags/heap_flags bits, sizes and offsets, fds that are
    not what the call wants, struct sizes and directions in the request
    number, udmabuf lists: bad or unsealed memfds, misaligned, overlapping,
    too many items, a count that lies), and never warns, oopses or trips
    DMA-API debug doing so.  ``INPUTS`` inputs per exporter, from
    ``--generated-seed``, in batches run where the kernel is (one round trip
    per batch on a guest), each answer compared with the reference model's
    (the stand-in of the exporter's kind for the kernel release).  A failing
    exporter accepts an input a correct one refuses (an unchecked flag bit
    that can never get a meaning, a range past the buffer), refuses with
    another errno (user space cannot tell the cases apart), or lets the
    kernel complain (WARN_ON reachable from user space).
    """
    if page_size != MODEL_PAGE_SIZE:
        not_checked(f"the reference model has {MODEL_PAGE_SIZE} B pages, the target {page_size}")
    kind = contract_kind(exporter)
    real = unchecked(target)
    model_name = stand_in_for(real.exporters(), kernel=real.info().kernel)(exporter.name)
    reference = ModelTarget(list_profiles=True)
    if kind == "udmabuf":
        _mirror_udmabuf_limits(real, reference)
    seed = generated_budget.seed
    tally = Tally(exporter.name, model_name, seed)
    inputs = generate(kind, INPUTS, seed, page_size)
    real.health()  # complaints from before the batches are not theirs
    # by category, so a kernel complaint is pinned on the category of its batch
    ordered = sorted(inputs, key=lambda i: i.category)
    for category, group in groupby(ordered, key=lambda i: i.category):
        chunk = list(group)
        for start in range(0, len(chunk), BATCH):
            batch = chunk[start : start + BATCH]
            encoded = [i.encode() for i in batch]
            t0 = time.monotonic()
            try:
                got = real.bad_input_batch(exporter.name, encoded)
            except GuestError as e:  # say which inputs were in flight
                raise GuestError(f"{e}\nduring a batch of {len(batch)} {category} inputs, "
                                 f"the first {batch[0].describe()}",
                                 console_log=e.console_log) from None  # fmt: skip
            t1 = time.monotonic()
            want = reference.bad_input_batch(model_name, encoded)
            tally.target_seconds += t1 - t0
            tally.model_seconds += time.monotonic() - t1
            tally.add(batch, got, want)
            health = real.health()
            if health.warnings or health.dma_api_errors:
                tally.complained({i.category for i in batch}, health.warnings,
                                 health.dma_api_errors, health.log_excerpt)  # fmt: skip
    request.node.user_properties.append((SUMMARY_PROPERTY, json.dumps(tally.record())))
    if not tally.ok:
        raise AssertionError(tally.failure())
