"""Exporter-specific cases (udmabuf, vgem, fork) against the model's kind stand-ins and bugs.

The faulty matrix (test_faulty_matrix.py) shows each faulty profile caught by
its family; here each new case is run directly on ``model:reference-udmabuf``
/ ``model:reference-vgem`` (which a run does not list: they are lockstep
shadows) and must pass, and on the one faulty profile made for it, where it
must fail.  The LocalTarget's fork operations run on memfds adopted as
dma-bufs (this machine has no exporter): real fork, real shared mappings.
"""

from __future__ import annotations

import ctypes
import inspect
import os
from typing import Any, Callable

import pytest

from cases import test_fork, test_protected_heap, test_udmabuf, test_udmabuf_limits, test_vgem
from conformance.errors import BadAddress, KernelError, SetupError, UnknownExporter
from conformance.exporters.dmabuf import DmaBuf
from conformance.exporters.libc import PAGE_SIZE as HOST_PAGE
from conformance.lockstep import CheckedTarget
from conformance.model.profiles import PROFILES
from conformance.records import ExporterInfo
from conformance.targets.local import LocalTarget
from conformance.targets.model import ModelTarget

Case = Callable[..., None]
U = test_udmabuf
# the model's page size: what its udmabuf stand-in checks alignment against
PAGE = ModelTarget().info().page_size
# (case, its parameters, the faulty profile that must fail it)
CASES: list[tuple[Case, dict[str, Any], str]] = [
    (U.test_unsealed_memfd_is_refused, {"use_list": False}, "udmabuf-no-seal-check"),
    (U.test_write_sealed_memfd_is_refused, {"use_list": True}, "udmabuf-no-seal-check"),
    (
        U.test_misaligned_range_is_refused,
        {"use_list": False, "misaligned": "offset"},
        "udmabuf-no-align-check",
    ),
    (U.test_empty_range_is_refused, {"use_list": False}, "udmabuf-empty"),
    (
        U.test_range_past_the_memfd_end_is_refused,
        {"use_list": True, "reach": "size-past-end"},
        "udmabuf-past-memfd-end",
    ),
    (U.test_list_buffer_holds_the_items_in_order, {}, "udmabuf-item-offset-ignored"),
    (U.test_list_with_bad_count_is_refused, {"bad_count": "count-0"}, "udmabuf-empty"),
    (
        U.test_list_with_bad_count_is_refused,
        {"bad_count": "past-list-limit"},
        "udmabuf-no-list-limit",
    ),
    (U.test_memfd_writes_show_through_the_dma_buf, {"use_list": True}, "udmabuf-copies-pages"),
    (test_vgem.test_own_dma_buf_imports_back_to_the_same_buffer, {}, "vgem-prime-copy"),
    (test_vgem.test_foreign_dma_buf_import_keeps_the_buffer, {}, "vgem-prime-copy"),
    (test_vgem.test_dma_buf_outlives_the_gem_handle, {}, "vgem-gem-close-frees"),
    (test_fork.test_child_writes_are_seen_by_the_parent, {}, "mmap-dontcopy"),
    (test_protected_heap.test_protected_heap_refuses_user_mappings, {}, "protected-heap-mappable"),
    (
        test_protected_heap.test_protected_heap_refuses_kernel_mappings_but_devices_map_it,
        {},
        "protected-heap-vmappable",
    ),
]
# issue 11: udmabuf's module limits, lowered for the case
CASES += [
    (test_udmabuf_limits.test_size_limit_mb_is_enforced, {"use_list": True},
     "udmabuf-size-limit-per-item"),
    (test_udmabuf_limits.test_list_limit_is_enforced, {}, "udmabuf-list-limit-param-ignored"),
]  # fmt: skip
IDS = [f"{c.__name__}-{'-'.join(map(str, p.values()))}" for c, p, _ in CASES]


def _reference_for(faulty: str) -> str:
    kind = PROFILES[f"model:faulty-{faulty}"].kind
    return "model:reference" if kind == "heap" else f"model:reference-{kind}"


def _run(case: Case, params: dict[str, Any], exporter: str) -> None:
    target = CheckedTarget(ModelTarget(list_profiles=True))
    if "pages" in inspect.signature(case).parameters:
        # what the ``pages`` fixture gives a case: sizes in pages of the target
        page_size = target.info().page_size
        params = {**params, "pages": lambda n: n * page_size}
    # issue 11 (cases/test_udmabuf_limits.py): the page size and the ``lowered``
    # fixture (a fresh model needs no restore)
    if "page_size" in inspect.signature(case).parameters:
        params = {**params, "page_size": target.info().page_size}
    if "lowered" in inspect.signature(case).parameters:
        params = {
            **params,
            "lowered": lambda name, value: target.set_module_param("udmabuf", name, str(value)),
        }
    try:
        case(target=target, exporter=ExporterInfo(exporter, "model"), **params)
    finally:
        target.close_all()


@pytest.mark.parametrize("case,params,faulty", CASES, ids=IDS)
def test_case_passes_on_the_reference_of_its_kind(case, params, faulty):
    _run(case, params, _reference_for(faulty))


@pytest.mark.parametrize("case,params,faulty", CASES, ids=IDS)
def test_case_fails_on_the_exporter_with_the_bug(case, params, faulty):
    # a case fails by a false assertion, by pytest.raises seeing no error, or by
    # the exporter's unexpected errno: all three are a failed case in a run
    try:
        _run(case, params, f"model:faulty-{faulty}")
    except (AssertionError, KernelError, pytest.fail.Exception):
        return
    pytest.fail(f"{case.__name__} passes on model:faulty-{faulty}")


def test_every_new_faulty_profile_has_a_case():
    new = {
        p.name.removeprefix("faulty-")
        for p in PROFILES.values()
        if p.family == "exporter-specific" or p.name == "faulty-mmap-dontcopy"
    }
    assert new == {faulty for _, _, faulty in CASES}


# -- the model's operations on their own ------------------------------------------------


def test_model_udmabuf_pages_are_shared_with_the_memfd_and_freed_with_the_buffer():
    t = ModelTarget(list_profiles=True)
    free_before = len(t.memory._free)
    buf = t.udmabuf_create(
        "model:reference-udmabuf", [(2 * PAGE, 2)], [(0, PAGE, PAGE)]
    )
    assert t.buffer_size(buf) == PAGE and t.live_buffers() == 1
    t.memfd_write(buf, 0, PAGE, b"shared")
    m = t.mmap(buf)
    assert t.cpu_read(m, 0, 6) == b"shared"
    t.close_all()
    assert t.live_buffers() == 0
    assert len(t.memory._free) == free_before + 2  # both memfd pages back


def test_model_refused_udmabuf_gives_its_memfd_pages_back():
    t = ModelTarget(list_profiles=True)
    free_before = len(t.memory._free)
    with pytest.raises(OSError):
        t.udmabuf_create("model:reference-udmabuf", [(PAGE, 0)], [(0, 0, PAGE)])
    assert len(t.memory._free) == free_before + 1 and t.live_buffers() == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.udmabuf_create("model:reference", [(PAGE, 2)], [(0, 0, PAGE)]),
        lambda t: t.udmabuf_create("model:reference-udmabuf", [(PAGE, 2)], [(1, 0, PAGE)]),
        lambda t: t.udmabuf_create(
            "model:reference-udmabuf", [(PAGE, 2)], [(0, 0, PAGE)] * 2, use_list=False
        ),
        lambda t: t.prime_import("model:reference-udmabuf", t.allocate("model:reference", PAGE)),
    ],
    ids=["not-udmabuf", "bad-memfd-index", "create-with-two-items", "prime-on-not-drm"],
)
def test_bad_input_is_a_setup_error_naming_it(call):
    with pytest.raises(SetupError) as e:
        call(ModelTarget(list_profiles=True))
    assert str(e.value)


def test_model_rejects_unknown_udmabuf_exporter_clearly():
    with pytest.raises(UnknownExporter, match="udmabuf_create needs a model udmabuf exporter"):
        ModelTarget().udmabuf_create("udmabuf", [], [])


# -- LocalTarget: real fork over a memfd standing in for a dma-buf -------------------------


def _memfd_buffer(target: LocalTarget, size: int = 2 * HOST_PAGE) -> int:
    fd = os.memfd_create("fork-test", os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    return target.adopt(DmaBuf(fd, "memfd"))


def test_local_fork_write_reaches_the_parent_through_both_paths():
    t = LocalTarget()
    try:
        buf = _memfd_buffer(t)
        m = t.mmap(buf)
        t.fork_write(m, 10, b"inherited")
        t.fork_mmap_write(buf, HOST_PAGE, b"own map")
        assert t.cpu_read(m, 10, 9) == b"inherited"
        assert t.cpu_read(m, HOST_PAGE, 7) == b"own map"
    finally:
        t.shutdown()


def test_local_fork_write_reports_a_child_killed_by_a_signal():
    t = LocalTarget()
    try:
        buf = _memfd_buffer(t)
        m = t.mmap(buf)
        mapping = t._mappings[m]
        # what VM_DONTCOPY does to the child: the address is not mapped there
        mmap_len = mapping.length
        _unmap(mapping.addr, mmap_len)
        mapping.length = mmap_len  # the table still believes in it
        with pytest.raises(BadAddress, match="SIGSEGV"):
            t.fork_write(m, 0, b"x")
        t._mappings.pop(m)  # already unmapped
    finally:
        t.shutdown()


def _unmap(addr: int, length: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    assert libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(length)) == 0
