"""Exporter adapters and discovery, against this machine's real kernel.

This kernel has no dma-buf exporter, so the adapters are driven into the
files that stand in for device nodes: the ioctls really reach the kernel,
which answers ENOTTY, and we check that the error names the request.  The
DmaBuf/Mapping plumbing (mmap through libc, mremap, faults past the end,
fdinfo) runs on a memfd, which the kernel maps the same way.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from conformance.errors import (
    BadAddress,
    InvalidArgument,
    NotATypewriter,
    UnknownExporter,
)
from conformance.exporters import (
    BadRequest,
    DmaBuf,
    HeapExporter,
    ProtectedHeapExporter,
    UdmabufExporter,
    discover,
    get_exporter,
    why_none_found,
)
from conformance.exporters.discovery import Paths
from conformance.exporters.kconfig import KernelConfig, parse, read_config
from conformance.exporters.libc import PAGE_SIZE
from conformance.exporters.vgem import VgemExporter, find_vgem


@pytest.fixture
def fake_dev(tmp_path: Path) -> Paths:
    """A /dev lookalike: two heaps, a udmabuf node and a DRM node, all plain files."""
    (tmp_path / "dma_heap").mkdir()
    for heap in ("system", "reserved", "cma"):
        (tmp_path / "dma_heap" / heap).write_bytes(b"")
    (tmp_path / "udmabuf").write_bytes(b"")
    (tmp_path / "dri").mkdir()
    (tmp_path / "dri" / "card0").write_bytes(b"")
    return Paths(
        dma_heap=str(tmp_path / "dma_heap"),
        udmabuf=str(tmp_path / "udmabuf"),
        dri=str(tmp_path / "dri"),
        ion=str(tmp_path / "ion"),
    )


@pytest.fixture
def empty_dev(tmp_path: Path) -> Paths:
    return Paths(
        dma_heap=str(tmp_path / "none"),
        udmabuf=str(tmp_path / "none"),
        dri=str(tmp_path / "none"),
        ion=str(tmp_path / "none"),
    )


@pytest.fixture
def memfd_buf() -> DmaBuf:
    fd = os.memfd_create("fake-dmabuf", os.MFD_CLOEXEC)
    os.ftruncate(fd, 4 * PAGE_SIZE)
    buf = DmaBuf(fd, "memfd")
    yield buf
    if buf.fd >= 0:
        buf.close()


# -- discovery ------------------------------------------------------------------------


def test_discovery_is_sorted_and_complete(fake_dev: Paths) -> None:
    names = [e.name for e in discover(fake_dev)]
    # card0 is not a DRM device (VERSION gets ENOTTY), so no vgem
    assert names == ["heap:cma", "heap:reserved", "heap:system", "udmabuf"]
    assert [e.name for e in discover(fake_dev)] == names  # stable across calls (xdist)
    infos = [e.info() for e in discover(fake_dev)]
    assert infos[0].kind == "heap" and infos[0].detail.endswith("dma_heap/cma")
    assert infos[-1].kind == "udmabuf"


def _heap_tree(tmp_path: Path, heaps: tuple[str, ...], cma_areas: tuple[str, ...]) -> Paths:
    (tmp_path / "dma_heap").mkdir(parents=True)
    for heap in heaps:
        (tmp_path / "dma_heap" / heap).write_bytes(b"")
    for area in cma_areas:
        (tmp_path / "cma" / area).mkdir(parents=True)
    none = str(tmp_path / "none")
    return Paths(
        dma_heap=str(tmp_path / "dma_heap"),
        cma_sysfs=str(tmp_path / "cma"),
        udmabuf=none,
        dri=none,
        ion=none,
    )


@pytest.mark.parametrize("legacy", ["reserved", "linux,cma", "default-pool"])
def test_6_17_default_cma_heap_and_its_legacy_name_are_one_heap(tmp_path, legacy) -> None:
    paths = _heap_tree(tmp_path, ("default_cma_region", legacy, "system"), (legacy,))
    found = {e.name: e for e in discover(paths)}
    assert sorted(found) == sorted(["heap:default_cma_region", f"heap:{legacy}", "heap:system"])
    old = found[f"heap:{legacy}"]
    assert isinstance(old, HeapExporter) and old.same_as == "heap:default_cma_region"
    assert "same CMA heap as heap:default_cma_region" in old.info().detail
    assert "CONFIG_DMABUF_HEAPS_CMA_LEGACY" in old.info().detail
    assert found["heap:default_cma_region"].same_as is None
    assert found["heap:system"].same_as is None
    assert {e.kind for e in found.values()} == {"heap"}


def test_a_cma_region_heap_named_after_the_only_cma_area_is_the_default_one(tmp_path) -> None:
    # 6.17+: a reusable shared-dma-pool region gets a heap under its node name; with one
    # CMA area only, that area is the default one
    paths = _heap_tree(tmp_path, ("default_cma_region", "camera-pool"), ("camera-pool",))
    found = {e.name: e for e in discover(paths)}
    assert found["heap:camera-pool"].same_as == "heap:default_cma_region"


def test_other_cma_heaps_and_pre_6_17_names_stand_alone(tmp_path) -> None:
    paths = _heap_tree(
        tmp_path, ("default_cma_region", "camera-pool", "video-pool"), ("camera-pool", "video-pool")
    )
    assert all(e.same_as is None for e in discover(paths))  # two areas: which is default?
    old = _heap_tree(tmp_path / "old", ("reserved", "system"), ("reserved",))
    assert all(e.same_as is None for e in discover(old))  # before 6.17: one name per heap


@pytest.mark.parametrize(
    "heap",
    [
        "protected,secure-video",  # drivers/tee/tee_heap.c, 6.18
        "protected,trusted-ui",
        "protected,secure-video-record",
        "secure_display",  # vendor secure heaps
        "qcom,secure-pixel",
        "system-secure",
        "restricted_mtk_cma",
        "mtk_svp",
    ],
)
def test_protected_heaps_are_their_own_kind(tmp_path, heap) -> None:
    paths = _heap_tree(tmp_path, ("system", heap), ())
    kinds = {e.name: e.kind for e in discover(paths)}
    assert kinds == {"heap:system": "heap", f"heap:{heap}": "protected-heap"}
    protected = get_exporter(f"heap:{heap}", paths)
    assert isinstance(protected, ProtectedHeapExporter)
    assert "no mmap" in protected.info().detail


def test_protected_heaps_have_a_stand_in_that_refuses_mmap() -> None:
    from conformance.model import stand_in_for
    from conformance.records import ExporterInfo
    from conformance.targets.model import ModelTarget

    stand_in = stand_in_for([ExporterInfo("heap:protected,secure-video", "protected-heap", "")])
    t = ModelTarget()
    buf = t.allocate(stand_in("heap:protected,secure-video"), 4 * PAGE_SIZE)
    with pytest.raises(InvalidArgument):
        t.mmap(buf)  # dma_buf_mmap_internal: no ops->mmap
    with pytest.raises(InvalidArgument):
        t.vmap(buf)
    a = t.attach(buf, "noncoherent")
    t.map_attachment(a, 0)  # devices use it as usual
    t.device_write(a, 0, b"video")
    assert t.device_read(a, 0, 5) == b"video"


def test_this_kernel_has_nothing_and_says_why() -> None:
    # the host kernel of this project's machines: no heaps, no udmabuf, no vgem
    if os.path.exists("/dev/dma_heap") or os.path.exists("/dev/udmabuf"):
        pytest.skip("this kernel has exporters")
    assert discover() == []
    why = why_none_found()
    assert "no /dev/dma_heap" in why and "no /dev/udmabuf" in why
    config = read_config()
    if config.source:
        assert "CONFIG_DMABUF_HEAPS" in why and config.source in why


def test_why_none_found_reads_config_states(empty_dev: Paths) -> None:
    config = KernelConfig(
        "/proc/config.gz",
        parse(
            "# CONFIG_DMABUF_HEAPS is not set\nCONFIG_UDMABUF=m\nCONFIG_DRM_VGEM=y\nCONFIG_ION=m\n"
        ),
    )
    why = why_none_found(config, empty_dev)
    assert "kernel built without CONFIG_DMABUF_HEAPS" in why
    assert "CONFIG_UDMABUF=m but not loaded: modprobe udmabuf" in why
    assert "CONFIG_DRM_VGEM=y yet no device node" in why
    assert "config read from /proc/config.gz" in why
    unknown = why_none_found(KernelConfig(""), empty_dev)
    assert "CONFIG_DMABUF_HEAPS unknown (no /proc/config.gz or /boot/config-*)" in unknown


def test_why_empty_heap_dir_mentions_cma(tmp_path: Path) -> None:
    (tmp_path / "dma_heap").mkdir()
    paths = Paths(
        dma_heap=str(tmp_path / "dma_heap"),
        udmabuf="/nonexistent",
        dri="/nonexistent",
        ion="/nonexistent",
    )
    why = why_none_found(KernelConfig("x", {"CONFIG_DMABUF_HEAPS": "y"}), paths)
    assert "is empty" in why and "CONFIG_DMABUF_HEAPS_SYSTEM" in why and "cma=" in why


def test_read_config_gz_and_plain(tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "config.gz"
    with gzip.open(gz, "wt") as f:
        f.write("CONFIG_UDMABUF=y\n# CONFIG_DMABUF_HEAPS is not set\n")
    cfg = read_config((str(tmp_path / "missing"), str(gz)))
    assert cfg.source == str(gz)
    assert cfg.state("CONFIG_UDMABUF") == "y"
    assert cfg.state("CONFIG_DMABUF_HEAPS") == "n"
    assert cfg.state("CONFIG_NEVER_HEARD_OF") == "n"
    assert read_config((str(tmp_path / "missing"),)).state("CONFIG_UDMABUF") == "?"


def test_unknown_exporter_lists_what_exists(fake_dev: Paths, empty_dev: Paths) -> None:
    with pytest.raises(UnknownExporter, match=r"'heap:nope'.*heap:cma, heap:reserved"):
        get_exporter("heap:nope", fake_dev)
    assert get_exporter("heap:system", fake_dev).name == "heap:system"
    with pytest.raises(UnknownExporter, match=r"offers: none \(no .*none"):
        get_exporter("udmabuf", empty_dev)


def test_find_vgem_skips_non_drm_nodes(fake_dev: Paths) -> None:
    assert find_vgem(fake_dev.dri) is None
    assert find_vgem("/nonexistent") is None


# -- adapters: the ioctl really reaches the kernel ------------------------------------


def test_heap_alloc_reaches_kernel_and_names_request(fake_dev: Paths) -> None:
    heap = HeapExporter("system", fake_dev.dma_heap)
    with pytest.raises(NotATypewriter) as ei:
        heap.allocate(4096, heap_flags=0)
    assert ei.value.op == "DMA_HEAP_IOCTL_ALLOC"
    assert ei.value.arg["len"] == 4096
    with pytest.raises(NotATypewriter) as ei:
        heap.allocate(4096, struct_size=16)
    assert ei.value.op == "DMA_HEAP_IOCTL_ALLOC[size=16]"
    with pytest.raises(BadRequest, match="struct_size 8 is too short"):
        heap.allocate(4096, struct_size=8)


def test_udmabuf_refuses_what_it_cannot_express(fake_dev: Paths) -> None:
    u = UdmabufExporter(fake_dev.udmabuf)
    with pytest.raises(InvalidArgument, match="no heap flags"):
        u.allocate(4096, heap_flags=1)
    with pytest.raises(InvalidArgument, match="only O_CLOEXEC"):
        u.allocate(4096, fd_flags=os.O_RDONLY)
    with pytest.raises(InvalidArgument, match="dma_heap_allocation_data only"):
        u.allocate(4096, struct_size=16)
    with pytest.raises(NotATypewriter) as ei:
        u.allocate(4096)  # real memfd, real ioctl on the stand-in node
    assert ei.value.op == "UDMABUF_CREATE"
    assert ei.value.arg == {"memfd": ei.value.arg["memfd"], "flags": 1, "offset": 0, "size": 4096}
    u.close()


def test_udmabuf_memfd_is_sealed_against_shrink() -> None:
    fd = UdmabufExporter.make_memfd(2 * PAGE_SIZE)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK
        with pytest.raises(PermissionError):
            os.ftruncate(fd, PAGE_SIZE)
        assert os.fstat(fd).st_size == 2 * PAGE_SIZE
    finally:
        os.close(fd)


def test_udmabuf_list_reaches_kernel(fake_dev: Paths) -> None:
    from conformance.exporters.udmabuf import ListItem

    u = UdmabufExporter(fake_dev.udmabuf)
    with pytest.raises(NotATypewriter) as ei:
        u.create_list([ListItem(3, 0, 4096), ListItem(3, 4096, 4096)], count=0xFFFFFFFF)
    assert ei.value.op == "UDMABUF_CREATE_LIST"
    assert ei.value.arg["count"] == 0xFFFFFFFF
    u.close()


def test_vgem_refuses_heap_flags(tmp_path: Path) -> None:
    v = VgemExporter(str(tmp_path / "card0"))
    with pytest.raises(InvalidArgument, match="vgem has no heap flags"):
        v.allocate(4096, heap_flags=2)


# -- DmaBuf plumbing on a memfd ------------------------------------------------------


def test_dmabuf_ioctls_name_themselves(memfd_buf: DmaBuf) -> None:
    with pytest.raises(NotATypewriter, match="DMA_BUF_IOCTL_SYNC"):
        memfd_buf.sync(3)
    for enc, op in (("A", "DMA_BUF_SET_NAME_A"), ("B", "DMA_BUF_SET_NAME_B")):
        with pytest.raises(NotATypewriter) as ei:
            memfd_buf.set_name(b"hello", enc)
        assert ei.value.op == op and ei.value.arg["name"] == "hello"
    with pytest.raises(BadRequest, match="encoding 'C' unknown"):
        memfd_buf.set_name(b"x", "C")
    with pytest.raises(NotATypewriter, match="EXPORT_SYNC_FILE"):
        memfd_buf.export_sync_file(1)
    with pytest.raises(NotATypewriter, match="IMPORT_SYNC_FILE"):
        memfd_buf.import_sync_file(-1, 1)


def test_mmap_read_write_and_exact_errnos(memfd_buf: DmaBuf) -> None:
    assert memfd_buf.size == 4 * PAGE_SIZE
    m = memfd_buf.mmap()
    m.write(10, b"abc")
    assert m.read(8, 6) == b"\0\0abc\0"
    assert os.pread(memfd_buf.fd, 3, 10) == b"abc"  # shared: the file sees it
    with pytest.raises(BadAddress, match="cpu_read"):
        m.read(4 * PAGE_SIZE - 1, 2)
    m.unmap()
    # a misaligned offset: EINVAL straight from mmap(2), not Python's own check
    with pytest.raises(InvalidArgument) as ei:
        memfd_buf.mmap(PAGE_SIZE, offset=1)
    assert ei.value.op == "mmap" and ei.value.arg["offset"] == 1
    private = memfd_buf.mmap(PAGE_SIZE, shared=False)  # memfd allows it; dma-bufs must not
    private.unmap()


def test_mremap_past_the_end_faults_in_a_child(memfd_buf: DmaBuf) -> None:
    m = memfd_buf.mmap()
    m.write(0, b"x")
    m.remap(8 * PAGE_SIZE)
    assert m.read(0, 1) == b"x"
    with pytest.raises(BadAddress) as ei:
        m.read(5 * PAGE_SIZE, 4)
    assert ei.value.arg["signal"] == "SIGBUS"
    with pytest.raises(BadAddress):
        m.write(4 * PAGE_SIZE - 1, b"ab")
    m.remap(PAGE_SIZE)
    assert m.read(0, 1) == b"x"
    m.unmap()


def test_lseek_fdinfo_dup_close(memfd_buf: DmaBuf) -> None:
    assert memfd_buf.lseek(0, os.SEEK_SET) == 0
    info = memfd_buf.fdinfo()
    assert info["pos"] == "0" and "flags" in info
    other = memfd_buf.dup()
    assert other.fd != memfd_buf.fd and other.size == memfd_buf.size
    other.close()
    from conformance.errors import BadFileDescriptor

    fd = other.fd
    assert fd == -1
    with pytest.raises(BadFileDescriptor, match="close"):
        other.close()


def test_poll_reports_revents(memfd_buf: DmaBuf) -> None:
    import select

    assert memfd_buf.poll(select.POLLIN, 0) & select.POLLIN
