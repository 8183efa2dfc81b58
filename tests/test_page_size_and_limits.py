"""The user-space cases size their buffers in the target's pages; udmabuf's limits come from
the kernel.

A 16 KiB-page arm64 kernel must get buffers of 16 KiB pages: a case that still
allocated 4096 bytes would test a sub-page buffer there.  The reference model
has 4 KiB pages, so here it stands in for a kernel with larger pages (every
size a case asks of it is then a multiple of model pages, which it serves) and
each case's sizes and offsets are recorded.  The stand-in page is 20 KiB, a
size no kernel has, so that no size written for 4 KiB pages (1, 2, 4, 16 or
256 of them) is a whole number of its pages by chance.

udmabuf's ``list_limit`` is a module parameter: the adapter reads it from sysfs
and reports it in ``ExporterInfo.detail``, and UDMABUF-007 tries one past the
limit the kernel reports, so a kernel that enforces only the default (and not
a lowered parameter) fails it.
"""

from __future__ import annotations

import dataclasses
import errno
import inspect
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from cases import (
    test_attach_order_cmo,
    test_fork,
    test_leak,
    test_mmap,
    test_sync,
    test_uapi,
    test_udmabuf,
    test_vgem,
    test_zero_fill,
)
from conformance.errors import kernel_error
from conformance.exporters.udmabuf import (
    DEFAULT_LIST_LIMIT,
    UdmabufExporter,
    limits_of,
    read_limits,
)
from conformance.guest import protocol
from conformance.patterns import assert_same_bytes, describe_difference, page_align
from conformance.records import Direction, ExporterInfo
from conformance.skips import NOT_CHECKED
from conformance.targets.model import ModelTarget

BIG_PAGE = 5 * 4096  # see the module docstring: larger than 4 KiB, and odd on purpose
ARM64_16K = 16384


class BigPageModel:
    """The model, reporting BIG_PAGE pages, recording every size and offset a case asks for."""

    def __init__(self, page_size: int = BIG_PAGE) -> None:
        self._model = ModelTarget(list_profiles=True)
        self.page_size = page_size
        self.sizes: list[tuple[str, int]] = []

    def info(self) -> Any:
        return dataclasses.replace(self._model.info(), page_size=self.page_size)

    def allocate(self, exporter: str, size: int, *args: Any, **kwargs: Any) -> int:
        self.sizes.append(("allocate", size))
        return self._model.allocate(exporter, size, *args, **kwargs)

    def mmap(self, buf: int, length: int | None = None, offset: int = 0, **kw: Any) -> int:
        if length is not None:
            self.sizes.append(("mmap length", length))
        self.sizes.append(("mmap offset", offset))
        return self._model.mmap(buf, length, offset, **kw)

    def udmabuf_create(
        self, exporter: str, memfds: list[tuple[int, int]], items: list[tuple[int, int, int]],
        **kw: Any,
    ) -> int:  # fmt: skip
        self.sizes += [("memfd", size) for size, _ in memfds]
        for _, offset, size in items:
            self.sizes += [("item offset", offset), ("item size", size)]
        return self._model.udmabuf_create(exporter, memfds, items, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


Case = Callable[..., None]
T = test_attach_order_cmo
# Cases whose buffers must be whole 16 KiB pages here (the ones that check an
# alignment refusal are left out: the 4 KiB model accepts a half 16 KiB page).
SIZED: list[tuple[Case, dict[str, Any], str]] = [
    (test_mmap.test_whole_buffer_mapping_reads_back_what_was_written, {}, "model:reference"),
    (test_mmap.test_mapping_past_the_end_is_einval, {"window": "window-past-end"},
     "model:reference"),
    (test_mmap.test_mapping_outlives_the_fd, {}, "model:reference"),
    (test_mmap.test_two_mappings_share_the_same_pages, {}, "model:reference"),
    (test_fork.test_child_writes_are_seen_by_the_parent, {}, "model:reference"),
    (test_uapi.test_lseek_reports_the_size_and_the_start, {}, "model:reference"),
    (test_uapi.test_fdinfo_shows_size_exporter_and_file_references, {}, "model:reference"),
    (test_uapi.test_dup_shares_the_buffer_and_outlives_the_original, {}, "model:reference"),
    (test_zero_fill.test_new_buffer_is_zeroed_after_reuse_of_dirtied_pages, {"page_count": 16},
     "model:reference"),
    (test_sync.test_start_then_end_is_accepted, {"direction": 3}, "model:reference"),
    (test_sync.test_bracketed_cpu_access_round_trips_data, {}, "model:reference"),
    (test_leak.test_buffer_is_released_when_fd_and_mappings_are_gone, {}, "model:reference"),
    (T.test_seed_004_coherent_device_reads_what_noncoherent_device_wrote, {}, "model:reference"),
    (T.test_first_device_map_cleans_what_the_cpu_wrote, {"direction": Direction.TO_DEVICE},
     "model:reference"),
    (T.test_cpu_reads_device_write_after_unmap, {"direction": Direction.FROM_DEVICE},
     "model:reference"),
    (T.test_data_flows_between_devices_and_cpu_in_any_attach_order,
     {"order": ("attach_c", "attach_n", "map_n"), "cpu_writes_after": True}, "model:reference"),
    (T.test_untouched_buffer_may_be_mapped_without_cpu_sync, {}, "model:reference"),
    (test_udmabuf.test_list_buffer_holds_the_items_in_order, {}, "model:reference-udmabuf"),
    (test_udmabuf.test_memfd_writes_show_through_the_dma_buf, {"use_list": True},
     "model:reference-udmabuf"),
    (test_udmabuf.test_range_past_the_memfd_end_is_refused,
     {"use_list": False, "reach": "straddles-end"}, "model:reference-udmabuf"),
    (test_vgem.test_own_dma_buf_imports_back_to_the_same_buffer, {}, "model:reference-vgem"),
]  # fmt: skip


def _pages_of(page_size: int) -> Callable[[int], int]:
    return lambda n: n * page_size


@pytest.mark.parametrize(
    "case,params,exporter_name", SIZED, ids=[f"{c.__name__}-{e}" for c, _, e in SIZED]
)
def test_case_sizes_are_whole_pages_of_the_target(case, params, exporter_name):
    target = BigPageModel()
    assert "pages" in inspect.signature(case).parameters, "the case does not size in pages"
    try:
        case(target=target, exporter=ExporterInfo(exporter_name, "model"),
             pages=_pages_of(BIG_PAGE), **params)  # fmt: skip
    finally:
        target.close_all()
    assert target.sizes, "the case allocated nothing"
    odd = [(what, n) for what, n in target.sizes if n % BIG_PAGE]
    assert not odd, f"sizes that are not whole {BIG_PAGE}-byte pages: {odd}"
    assert any(n >= BIG_PAGE for _, n in target.sizes)


def test_parametrized_sizes_have_page_count_ids():
    marks = [m for m in test_zero_fill.test_new_buffer_is_zeroed_after_reuse_of_dirtied_pages
             .pytestmark if m.name == "parametrize"]  # fmt: skip
    (mark,) = marks
    ids = [mark.kwargs["ids"](n) for n in mark.args[1]]
    assert ids == ["1-page", "16-pages", "256-pages"]


def test_patterns_take_the_page_size():
    assert page_align(1, ARM64_16K) == ARM64_16K
    assert page_align(ARM64_16K + 1, ARM64_16K) == 2 * ARM64_16K
    left, right = bytes(2 * ARM64_16K), bytearray(2 * ARM64_16K)
    right[ARM64_16K + 5] = 1
    lines = describe_difference(left, bytes(right), ARM64_16K)
    assert f"first difference at byte {ARM64_16K + 5} (1 pages + 5)" in lines
    # without a page size nothing is said in pages (no 4096 assumed)
    assert "first difference at byte 16389" in describe_difference(left, bytes(right))
    with pytest.raises(AssertionError, match=r"\(1 pages \+ 5\)"):
        assert_same_bytes(left, bytes(right), page_size=ARM64_16K)


# -- udmabuf's module parameters -------------------------------------------------------


def _params(tmp_path: Path, **values: str) -> str:
    for name, value in values.items():
        (tmp_path / name).write_text(value + "\n")
    return str(tmp_path)


def test_udmabuf_adapter_reports_its_module_parameters(tmp_path):
    params = _params(tmp_path, list_limit="7", size_limit_mb="16")
    e = UdmabufExporter("/dev/udmabuf", params_dir=params)
    info = e.info()
    assert info.detail == "/dev/udmabuf list_limit=7 size_limit_mb=16"
    assert limits_of(info) == {"list_limit": 7, "size_limit_mb": 16}
    # root may change a parameter during a run: the report follows the kernel
    (tmp_path / "list_limit").write_text("2048\n")
    assert limits_of(e.info())["list_limit"] == 2048
    # what a case in the host reads of the guest's exporter: the detail crosses the protocol
    crossed = protocol.decode_value(json.loads(json.dumps(protocol.encode_value(e.info()))))
    assert limits_of(crossed) == {"list_limit": 2048, "size_limit_mb": 16}


def test_unreadable_udmabuf_parameters_are_reported_unknown(tmp_path):
    params = _params(tmp_path, size_limit_mb="lots")
    limits, missing = read_limits(params)
    assert limits == {} and len(missing) == 2
    info = UdmabufExporter("/dev/udmabuf", params_dir=params).info()
    assert "unknown" in info.detail and "list_limit" in info.detail and "'lots'" in info.detail
    assert limits_of(info) == {}
    # the list-limit case does not guess the limit of a real udmabuf: not checked, saying why
    with pytest.raises(pytest.skip.Exception, match=NOT_CHECKED + "udmabuf's list_limit"):
        test_udmabuf.list_limit(info)


def test_model_udmabuf_keeps_the_upstream_default():
    assert test_udmabuf.list_limit(ExporterInfo("model:reference-udmabuf", "model")) == 1024
    assert DEFAULT_LIST_LIMIT == 1024


class ListLimitKernel:
    """Just enough of a target for UDMABUF-007: CREATE_LIST checks a count against a limit."""

    def __init__(self, enforced_limit: int) -> None:
        self.enforced_limit = enforced_limit
        self.counts: list[int | None] = []

    def udmabuf_create(self, exporter: str, memfds: Any, items: Any, *, use_list: bool = True,
                       count: int | None = None) -> int:  # fmt: skip
        self.counts.append(count)
        n = len(items) if count is None else count
        if n == 0 or n > self.enforced_limit:
            raise kernel_error(errno.EINVAL, "UDMABUF_CREATE_LIST", {"count": n})
        return 3  # accepted: a buffer made from memory the list does not hold


def _run_past_list_limit(kernel: ListLimitKernel, reported: int) -> None:
    exporter = ExporterInfo("udmabuf", "udmabuf", f"/dev/udmabuf list_limit={reported}")
    test_udmabuf.test_list_with_bad_count_is_refused(
        target=kernel, exporter=exporter, pages=_pages_of(4096), bad_count="past-list-limit"
    )


def test_past_list_limit_tries_one_past_the_reported_limit():
    kernel = ListLimitKernel(enforced_limit=7)
    _run_past_list_limit(kernel, reported=7)
    assert kernel.counts == [8]


def test_past_list_limit_fails_a_kernel_ignoring_its_lowered_parameter():
    # list_limit lowered to 7, but the kernel still refuses only past the default
    kernel = ListLimitKernel(enforced_limit=DEFAULT_LIST_LIMIT)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        _run_past_list_limit(kernel, reported=7)
    assert kernel.counts == [8]


def test_udmabuf_without_parameters_has_the_compiled_in_limits(tmp_path):
    # 5.10's udmabuf.c: `static const u32 list_limit = 1024`, no module parameters at all
    limits, missing = read_limits(str(tmp_path / "no-parameters"))
    assert limits == {"list_limit": 1024, "size_limit_mb": 64} and missing == []
    info = UdmabufExporter("/dev/udmabuf", params_dir=str(tmp_path / "no-parameters")).info()
    assert test_udmabuf.list_limit(info) == 1024
