"""The stand-ins follow the kernel release: the version table, its choice per release, lockstep.

The "real" kernels here are model targets whose udmabuf behaves as the
upstream source of that release does, written out by hand from udmabuf.c
(not taken from the table under test), so a wrong table entry shows.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from conformance.errors import BadAddress, InvalidArgument, NotATypewriter
from conformance.lockstep import CheckedTarget, Divergence
from conformance.model import (
    CHANGES,
    KIND_PROFILES,
    PROFILES,
    STAND_INS,
    StandInNote,
    choose,
    stand_in_for,
)
from conformance.model.kernel_ranges import (
    CORE,
    KINDS,
    binds,
    next_release,
    previous_release,
    segments,
)
from conformance.records import Direction, ExporterInfo, SyncFlag, TargetInfo
from conformance.targets.model import ModelTarget

PAGE = 4096
UDMABUF_61 = KIND_PROFILES["udmabuf"]
# udmabuf.c of 6.12.118, read directly: vmap_udmabuf/vunmap_udmabuf in udmabuf_ops, and
# mmap_udmabuf sets VM_PFNMAP | VM_DONTEXPAND (mremap growth: EFAULT)
UDMABUF_612 = dataclasses.replace(
    UDMABUF_61, name="test-udmabuf-6.12", has_vmap=True, mremap_grow="efault", vmap_cmo=False
)


def _standin(kind: str, kernel: str | None) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StandInNote)
        return choose(kind, kernel).profile.exporter_name


@pytest.mark.parametrize(
    "kernel, expected",
    [
        (
            "5.10.223-amd64",
            {
                "heap": "model:reference-heap@..5.10",
                "udmabuf": "model:reference-udmabuf@..5.19",
                "vgem": "model:reference-vgem@..5.19",
                "ion": "model:reference-ion@5.6..5.19",
            },
        ),
        (
            "6.1.192",
            {
                "heap": "model:reference",
                "udmabuf": "model:reference-udmabuf",
                "vgem": "model:reference-vgem",
            },
        ),
        (
            "6.12.118",
            {
                "heap": "model:reference",
                "udmabuf": "model:reference-udmabuf@6.12.118..6.12.y",
                "vgem": "model:reference-vgem",
            },
        ),
        ("6.5.0", {"udmabuf": "model:reference-udmabuf@6.2..6.10"}),
        ("6.0.7", {"udmabuf": "model:reference-udmabuf@6.0", "heap": "model:reference"}),
        ("6.1.119", {"udmabuf": "model:reference-udmabuf@6.1.0..6.1.191"}),
        ("6.12.57", {"udmabuf": "model:reference-udmabuf@6.12.0..6.12.117"}),
    ],
)
def test_each_release_gets_the_stand_in_of_its_range(kernel, expected):
    got = {kind: _standin(kind, kernel) for kind in expected}
    assert got == expected


def test_6_1_keeps_exactly_the_stand_ins_it_had():
    for kind in ("heap", "udmabuf", "vgem"):
        choice = choose(kind, "6.1.192")
        assert choice.profile is KIND_PROFILES[kind], kind
        assert choice.note == ""


def test_without_a_kernel_release_the_6_1_stand_ins_are_used_silently():
    for kind in KINDS:
        assert choose(kind, None).profile is KIND_PROFILES[kind]
        assert choose(kind, None).note == ""


def test_udmabuf_6_12_adopts_vmap_and_refuses_growth():
    p = choose("udmabuf", "6.12.118").profile
    assert (p.has_vmap, p.mremap_grow, p.vmap_cmo) == (True, "efault", False)
    assert (p.sgt_cache, p.map_skip_cpu_sync, p.cpu_access) == (
        "at-first-map",
        True,
        "misc-device",
    )
    mid = choose("udmabuf", "6.6.30").profile  # vmap (6.2) but still the fault handler
    assert (mid.has_vmap, mid.mremap_grow) == (True, "fault-handler")


def test_5_10_stand_ins_copy_5_10():
    udmabuf = choose("udmabuf", "5.10.223").profile
    assert not udmabuf.map_skip_cpu_sync and not udmabuf.has_vmap
    assert not udmabuf.sync_file_ioctls and udmabuf.mremap_grow == "fault-handler"
    heap = choose("heap", "5.10.223").profile
    assert heap.mremap_grow == "fault-handler" and heap.has_vmap and heap.vmap_refcount
    ion = choose("ion", "5.10.223").profile
    assert (ion.has_vmap, ion.has_kmap, ion.kmap_in_begin) == (False, False, True)
    assert ion.kmap_count_balanced and not ion.begin_map_error_swallowed  # bugs stay findings
    vgem = choose("vgem", "5.10.223").profile
    assert dataclasses.replace(vgem, name="x", description="", source="") == (
        dataclasses.replace(
            KIND_PROFILES["vgem"], name="x", description="", source="", sync_file_ioctls=False
        )
    )


def test_every_change_is_sourced_and_applied_inside_its_range_only():
    for change in CHANGES:
        assert change.source and change.summary
        inside = change.first or change.last
        assert inside is not None
        kinds = KINDS if change.kind == CORE else (change.kind,)
        for kind in kinds:
            prof = choose(kind, str(inside)).profile
            for field, value in change.changes.items():
                assert getattr(prof, field) == value, (kind, inside, field)
            if change.last is not None:
                outside = next_release(change.last)
            else:
                outside = previous_release(change.first)
            base = KIND_PROFILES[kind]
            other = choose(kind, str(outside)).profile
            for field in change.changes:
                overridden = any(
                    field in c.changes and c.covers(outside) and c.kind in (kind, CORE)
                    for c in CHANGES
                )
                if not overridden:
                    assert getattr(other, field) == getattr(base, field), (kind, outside, field)


def test_segments_tile_every_release_without_gaps():
    for kind in KINDS:
        segs = segments(kind)
        assert segs[0].first is None and segs[-1].last is None
        for a, b in zip(segs, segs[1:]):
            assert a.last is not None and b.first is not None
            if a.last == b.first:  # one series cut at a stable point release
                assert a.patch_to is not None and b.patch_from == a.patch_to + 1
            else:
                assert a.last < b.first and a.patch_to is None and b.patch_from in (None, 0)
        for _, prof in STAND_INS[kind]:
            assert PROFILES[prof.exporter_name] is prof


def test_a_newer_kernel_gets_the_latest_stand_in_with_a_note():
    exporters = [ExporterInfo("udmabuf", "udmabuf", "")]
    with pytest.warns(StandInNote, match="newer than 6.12"):
        stand_in = stand_in_for(exporters, kernel="6.17.2-test")
    assert stand_in("udmabuf") == "model:reference-udmabuf@6.13.."
    assert any("6.17" in n and "6.12" in n for n in stand_in.notes)


def test_an_older_kernel_and_an_unreadable_release_say_so():
    assert "older than 5.10" in choose("udmabuf", "4.19.0").note
    choice = choose("udmabuf", "vendor-kernel")
    assert choice.profile is UDMABUF_61 and "not understood" in choice.note
    assert "left mainline after 5.10" in choose("ion", "6.6.0").note


def test_model_exporters_are_compared_with_their_base_kind_on_any_kernel():
    exporters = [ExporterInfo("model:faulty-udmabuf-empty", "model", "")]
    assert stand_in_for(exporters, kernel="6.12.118")("model:faulty-udmabuf-empty") == (
        "model:reference-udmabuf"
    )


# -- lockstep against a "real" kernel of a given release ---------------------------------


class UpstreamKernel(ModelTarget):
    """A model playing a real kernel: a udmabuf exporter behaving as ``profile``."""

    def __init__(self, release: str, profile, monkeypatch) -> None:
        super().__init__(aliasing=False)  # an x86 guest: a physically indexed cache
        self.release = release
        self._backing = profile.exporter_name
        monkeypatch.setitem(PROFILES, profile.exporter_name, profile)

    def info(self) -> TargetInfo:
        return dataclasses.replace(super().info(), target="local", kernel=self.release)

    def exporters(self) -> list[ExporterInfo]:
        return [ExporterInfo("udmabuf", "udmabuf", "")]

    def allocate(self, exporter: str, size: int, **kwargs) -> int:
        assert exporter == "udmabuf"
        return super().allocate(self._backing, size, **kwargs)


def _checked(real: UpstreamKernel, kernel: str) -> CheckedTarget:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StandInNote)
        stand_in = stand_in_for(real.exporters(), kernel=kernel)
    return CheckedTarget(real, ModelTarget(aliasing=False), stand_in)


def _vmap_and_grow(t: CheckedTarget) -> None:
    buf = t.allocate("udmabuf", 2 * PAGE)
    v = t.vmap(buf)
    t.vmap_write(v, 0, b"kernel")
    assert t.vmap_read(v, 0, 6) == b"kernel"
    t.vunmap(v)
    m = t.mmap(buf)
    with pytest.raises(BadAddress):
        t.mremap(m, 4 * PAGE)  # VM_DONTEXPAND: refused
    assert t.cpu_read(m, 0, 6) == b"kernel"


def test_lockstep_with_the_6_12_stand_in_accepts_vmap_and_refused_growth(monkeypatch):
    real = UpstreamKernel("6.12.118", UDMABUF_612, monkeypatch)
    t = _checked(real, real.info().kernel)
    _vmap_and_grow(t)
    c = t.log.comparison()
    assert c.status == "fully", c.line()


def test_the_6_1_stand_in_would_call_6_12_vmap_a_divergence(monkeypatch):
    real = UpstreamKernel("6.12.118", UDMABUF_612, monkeypatch)
    t = _checked(real, "6.1.0")  # the table ignored: the false failure this replaces
    with pytest.raises(Divergence, match="vmap"):
        _vmap_and_grow(t)


def test_lockstep_on_6_1_is_as_before(monkeypatch):
    real = UpstreamKernel("6.1.192", UDMABUF_61, monkeypatch)
    t = _checked(real, real.info().kernel)
    buf = t.allocate("udmabuf", 2 * PAGE)
    with pytest.raises(InvalidArgument):
        t.vmap(buf)  # no vmap in 6.1 udmabuf
    m = t.mmap(buf)
    t.mremap(m, 4 * PAGE)  # the fault handler: growth succeeds ...
    with pytest.raises(BadAddress):
        t.cpu_read(m, 2 * PAGE, 16)  # ... and the page past the end is SIGBUS
    assert t.log.comparison().status == "fully"


# -- what the version differences do on the model ------------------------------------------


def test_5_10_has_no_sync_file_ioctls():
    t = ModelTarget()
    old = t.allocate(choose("heap", "5.10.223").profile.exporter_name, PAGE)
    with pytest.raises(NotATypewriter):
        t.export_sync_file(old, int(SyncFlag.RW))
    new = t.allocate(choose("heap", "6.1.0").profile.exporter_name, PAGE)
    t.close_sync_file(t.export_sync_file(new, int(SyncFlag.RW)))


def test_5_10_udmabuf_maps_attachments_with_cache_maintenance():
    def map_cmos(kernel: str) -> int:
        t = ModelTarget()
        buf = t.allocate(choose("udmabuf", kernel).profile.exporter_name, 2 * PAGE)
        a = t.attach(buf, "noncoherent")
        t.cmo_log()
        t.map_attachment(a, Direction.TO_DEVICE)
        return len(t.cmo_log())

    assert map_cmos("5.10.223") > 0  # get_sg_table: dma_map_sgtable(..., 0)
    assert map_cmos("6.1.192") == 0  # DMA_ATTR_SKIP_CPU_SYNC: 504e2b4ab97a, backported


def test_5_10_udmabuf_first_start_is_the_misc_map_itself():
    t = ModelTarget()
    buf = t.allocate(choose("udmabuf", "5.10.223").profile.exporter_name, PAGE)
    m = t.mmap(buf)
    t.cpu_write(m, 0, b"cpu")
    t.sync(buf, int(SyncFlag.RW))  # maps the misc device with its CMO, no separate sync
    causes = [op.cause for op in t.cmo_log()]
    assert causes and not any("sync" in c for c in causes), causes
    t.sync(buf, int(SyncFlag.RW | SyncFlag.END))
    t.sync(buf, int(SyncFlag.RW))  # from the second START on: a sync
    assert t.cpu_read(m, 0, 3) == b"cpu"


def test_5_10_ion_has_no_vmap_but_counts_begin_end():
    t = ModelTarget()
    buf = t.allocate(choose("ion", "5.10.223").profile.exporter_name, PAGE)
    with pytest.raises(InvalidArgument):
        t.vmap(buf)
    t.sync(buf, int(SyncFlag.RW))
    assert t.counters(buf)["kmap_count"] == 1
    t.sync(buf, int(SyncFlag.RW | SyncFlag.END))
    t.sync(buf, int(SyncFlag.RW | SyncFlag.END))  # unbalanced END: the contract keeps 0
    assert t.counters(buf)["kmap_count"] == 0


@pytest.mark.parametrize(
    "kernel, kernels, expected",
    [
        ("6.12.118", "..6.10", False),  # MMAP-007's udmabuf growth: gone with VM_DONTEXPAND
        ("6.1.192", "..6.10", True),
        ("5.10.223", "6.0..", False),  # sync-file ioctls
        ("6.0.1", "6.0..", True),
        ("6.5.0", "6.2..6.10", True),
        ("6.11.0", "6.2..6.10", False),
        ("6.1.0", "6.1", True),
        ("model (6.1 dma-buf semantics)", "6.0..", None),
        (None, "6.0..", None),
    ],
)
def test_a_case_can_say_which_releases_its_contract_binds(kernel, kernels, expected):
    assert binds(kernel, kernels) is expected


@pytest.mark.parametrize("bad", ["", "..", "six..", "6.1..x"])
def test_a_malformed_kernel_range_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="kernel range"):
        binds("6.1.0", bad)


@pytest.mark.parametrize(
    "kind, kernel, grows",
    [
        ("heap", "5.10.223", True),  # heap-helpers: dma_heap_vm_fault, no VM_DONTEXPAND
        ("heap", "6.1.0", False),  # system_heap.c: remap_pfn_range
        ("udmabuf", "6.6.0", True),  # fault handler until 6.11
        ("udmabuf", "6.12.118", False),  # VM_PFNMAP | VM_DONTEXPAND
        ("ion", "5.10.223", False),  # ion_heap_map_user: remap_pfn_range
    ],
)
def test_mremap_growth_follows_the_release(kind, kernel, grows):
    t = ModelTarget()
    buf = t.allocate(choose(kind, kernel).profile.exporter_name, 2 * PAGE)
    m = t.mmap(buf)
    if grows:
        t.mremap(m, 4 * PAGE)
        with pytest.raises(BadAddress):  # SIGBUS past the buffer
            t.cpu_read(m, 2 * PAGE, 16)
    else:
        with pytest.raises(BadAddress):  # EFAULT from mremap
            t.mremap(m, 4 * PAGE)


def test_udmabuf_vmap_arrives_in_6_2():
    t = ModelTarget()
    for kernel, has in (("6.1.0", False), ("6.2.0", True), ("6.12.118", True)):
        buf = t.allocate(choose("udmabuf", kernel).profile.exporter_name, PAGE)
        if has:
            t.vunmap(t.vmap(buf))
        else:
            with pytest.raises(InvalidArgument):
                t.vmap(buf)


def test_the_plugin_shadows_a_6_12_target_with_the_6_12_stand_in(monkeypatch):
    from fixtures.plugin import _shadow_for

    class Config:
        @staticmethod
        def getoption(name: str) -> str:
            assert name == "--compare"
            return "on"

    real = UpstreamKernel("6.12.118-amd64", UDMABUF_612, monkeypatch)
    shadow, stand_in = _shadow_for(Config(), real, real.exporters()[0])  # type: ignore[arg-type]
    assert isinstance(shadow, ModelTarget)
    assert stand_in("udmabuf") == "model:reference-udmabuf@6.12.118..6.12.y"


def test_a_stable_backport_cuts_a_series_at_the_point_release_read():
    # 504e2b4ab97a reached 6.1.y and 6.12.y as a stable backport: 6.1.192 maps with
    # DMA_ATTR_SKIP_CPU_SYNC (read), so every later 6.1.y does; earlier ones are assumed not to
    assert choose("udmabuf", "6.1.192").profile.map_skip_cpu_sync
    assert choose("udmabuf", "6.1.250").note == ""
    before = choose("udmabuf", "6.1.100")
    assert not before.profile.map_skip_cpu_sync
    assert "504e2b4ab97a" in before.note and "compared as before it" in before.note
    assert choose("udmabuf", "5.10.223").note == ""  # read: still without
    assert "504e2b4ab97a" in choose("udmabuf", "5.10.240").note  # may have the backport
    assert choose("udmabuf", "6.12.118").note == ""
