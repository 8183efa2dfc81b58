"""The kernel-side cases fail on a real kernel whose system heap has their bug (slow).

Each mutant is a patch of qemu/mutants/ applied to the real 6.1 system_heap.c
and built in the mutant workspace (conformance/mutants/); its guest boots with
the probe.  Each case is run by calling its function with a guest as target,
once on the clean suite kernel's ``heap:system`` (it passes) and once on the
mutant kernel's (it fails, and says why).  The model's faulty exporters show
the same for the model (tests/test_faulty_matrix.py); the whole catalogue's
kill matrix is ``python -m conformance.mutants sweep`` (tests/test_mutants.py
runs its CI subset).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

from conformance.errors import BadAddress
from conformance.records import Direction, ExporterInfo
from conformance.targets.qemu import QemuTarget

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PAGE = 4096


def _case_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"cases_{name}", REPO / "cases" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def guest(probe_guest: QemuTarget) -> QemuTarget:
    return probe_guest


SYSTEM = ExporterInfo("heap:system", "heap")
Mutants = Callable[[str], QemuTarget]


def _pages(n: int) -> int:
    return n * PAGE


def test_kmap_003_catches_a_begin_cpu_access_that_maps_the_buffer(
    guest: QemuTarget, mutant_guest: Mutants
) -> None:
    case = _case_module("test_kmap_contract").test_begin_cpu_access_creates_no_kernel_mapping
    case(guest, SYSTEM, _pages)
    guest.close_all()
    with pytest.raises(AssertionError, match="begin_cpu_access mapped the buffer into the kernel"):
        case(mutant_guest("heap-system-begin-cpu-access-vmaps"), SYSTEM, _pages)


def test_kmap_004_catches_a_vunmap_that_leaves_the_mapping(
    guest: QemuTarget, mutant_guest: Mutants
) -> None:
    case = _case_module("test_kmap_contract")
    run = case.test_balanced_vmaps_leave_no_kernel_mapping_and_the_buffer_is_freed
    run(guest, SYSTEM, guest.vmap, _pages)
    guest.close_all()
    with pytest.raises(AssertionError, match=r"3 kernel mapping\(s\) of the buffer left"):
        mutant = mutant_guest("heap-system-vunmap-leaks-mapping")
        run(mutant, SYSTEM, mutant.vmap, _pages)


def test_negkmap_002_catches_end_cpu_access_unmapping_a_held_vmap(
    guest: QemuTarget, mutant_guest: Mutants
) -> None:
    """The probe refuses the dangling address (EFAULT) instead of oopsing; the guest lives."""
    case = _case_module("test_negative_kmap_cnt")
    run = case.test_unbalanced_sync_end_leaves_kernel_mappings_and_device_maps_working
    run(guest, SYSTEM, guest.vmap, _pages)
    guest.close_all()
    mutant = mutant_guest("heap-system-end-cpu-access-unbalanced-put")
    with pytest.raises(BadAddress):
        run(mutant, SYSTEM, mutant.vmap, _pages)
    mutant.close_all()
    buf = mutant.allocate("heap:system", PAGE)
    assert mutant.buffer_size(buf) == PAGE  # the guest and its agent are fine
    mutant.close_all()


@pytest.mark.parametrize(
    "name, direction, path",
    [
        ("test_cpu_reads_what_a_still_mapped_device_wrote", Direction.FROM_DEVICE, "uapi"),
        ("test_cpu_reads_what_a_still_mapped_device_wrote", Direction.BIDIRECTIONAL, "kernel"),
        ("test_still_mapped_device_reads_what_the_cpu_wrote", Direction.TO_DEVICE, "uapi"),
        ("test_still_mapped_device_reads_what_the_cpu_wrote", Direction.TO_DEVICE, "kernel"),
    ],
)
def test_stream_cases_catch_begin_end_cpu_access_skipping_mapped_attachments(
    guest: QemuTarget, mutant_guest: Mutants, name: str, direction: Direction, path: str
) -> None:
    """STREAM-001/002 pass on the system heap and fail on the mutant whose
    begin/end_cpu_access skip the sync of mapped attachments: no sync call in the event log
    (and, a non-coherent device bouncing under swiotlb=force, stale data)."""
    case = getattr(_case_module("test_streaming_dma"), name)
    case(guest, SYSTEM, _pages, guest.vmap, direction, "noncoherent", path)
    guest.close_all()
    # caught by the missing sync call in the event log, or else by the stale data
    mutant = mutant_guest("heap-system-cpu-access-skips-mapped")
    with pytest.raises(AssertionError, match="expected a sync_s|stale data"):
        case(mutant, SYSTEM, _pages, mutant.vmap, direction, "noncoherent", path)
    mutant.close_all()


def test_stream_003_catches_end_cpu_access_skipping_mapped_attachments(
    guest: QemuTarget, mutant_guest: Mutants
) -> None:
    run = _case_module("test_streaming_dma").test_every_mapped_attachment_reads_what_the_cpu_wrote
    order = ("coherent", "smallseg", "noncoherent")
    run(guest, SYSTEM, _pages, guest.vmap, order, "uapi")
    guest.close_all()
    mutant = mutant_guest("heap-system-cpu-access-skips-mapped")
    with pytest.raises(AssertionError, match="smallseg .* read stale data"):
        run(mutant, SYSTEM, _pages, mutant.vmap, order, "uapi")
    mutant.close_all()
