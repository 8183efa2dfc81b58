"""The target operations of issue 11's release, page-leak and module-limit cases.

``meminfo`` (/proc/meminfo plus the per-CPU free lists), ``module_param`` and
``set_module_param`` (/sys/module/<m>/parameters/<p>) on the local target over
stand-in trees, on the model (a page account, udmabuf's two parameters), across
the lockstep (the shadow model follows a parameter change) and the guest agent;
and the model's faulty release paths behind REL-00x and LEAK-003.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.errors import InvalidArgument, NotAvailableOnTarget, SetupError
from conformance.exporters.discovery import Paths
from conformance.guest.agent import Agent
from conformance.lockstep import CheckedTarget
from conformance.model.memory import PAGE_SIZE
from conformance.records import Direction, SyncFlag
from conformance.targets.agent import FORWARDED
from conformance.targets.local import LocalTarget
from conformance.targets.model import ModelTarget
from conformance.targets.qemu import QemuTarget

MEMINFO = """MemTotal:        1020508 kB
MemFree:          972828 kB
MemAvailable:     979240 kB
KReclaimable:         12 kB
SReclaimable:          8 kB
HugePages_Total:       0
"""
ZONEINFO = """Node 0, zone    DMA32
  pages free     243207
        high     1516
  pagesets
    cpu: 0
              count: 201
              high:  1262
              batch: 63
  vm stats threshold: 24
    cpu: 1
              count: 30
              high:  1262
              batch: 63
  vm stats threshold: 24
  node_unreclaimable:  0
"""
SEALED = 0x2  # F_SEAL_SHRINK


@pytest.fixture
def local(tmp_path: Path) -> LocalTarget:
    nowhere = str(tmp_path / "none")
    t = LocalTarget(
        paths=Paths(dma_heap=nowhere, udmabuf=nowhere, dri=nowhere, ion=nowhere),
        probe_path=str(tmp_path / "dmabuf_probe"),
        debugfs=str(tmp_path / "debugfs"),
        kmsg_path=str(tmp_path / "kmsg"),
    )
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "zoneinfo").write_text(ZONEINFO)
    params = tmp_path / "sys" / "module" / "udmabuf" / "parameters"
    params.mkdir(parents=True)
    (params / "list_limit").write_text("1024\n")
    (params / "size_limit_mb").write_text("64\n")
    t.proc_root = str(proc)
    t.sysfs_module_root = str(tmp_path / "sys" / "module")
    yield t
    t.shutdown()


# -- the local target -------------------------------------------------------------------


def test_local_meminfo_reads_kb_and_the_per_cpu_lists(local: LocalTarget) -> None:
    info = local.meminfo()
    assert info["MemFree"] == 972828 and info["KReclaimable"] == 12
    assert info["HugePages_Total"] == 0  # a count, kept as the kernel prints it
    assert info["PerCpuFree"] == (201 + 30) * PAGE_SIZE // 1024


def test_local_meminfo_without_zoneinfo_counts_no_per_cpu_pages(local: LocalTarget) -> None:
    Path(local.proc_root, "zoneinfo").unlink()
    assert local.meminfo()["PerCpuFree"] == 0


def test_local_meminfo_unreadable_is_not_available(local: LocalTarget) -> None:
    Path(local.proc_root, "meminfo").unlink()
    with pytest.raises(NotAvailableOnTarget, match="meminfo"):
        local.meminfo()


def test_local_module_param_read_write_and_restore(local: LocalTarget) -> None:
    assert local.module_param("udmabuf", "list_limit") == "1024"
    assert local.set_module_param("udmabuf", "list_limit", "2") == "1024"
    path = Path(local.sysfs_module_root, "udmabuf", "parameters", "list_limit")
    assert path.read_text() == "2\n"
    assert local.module_param("udmabuf", "list_limit") == "2"


def test_local_missing_module_param_is_not_available_and_says_why(local: LocalTarget) -> None:
    with pytest.raises(NotAvailableOnTarget, match="no module parameter nope"):
        local.module_param("udmabuf", "nope")
    with pytest.raises(NotAvailableOnTarget, match="no module parameter"):
        local.set_module_param("vgem", "list_limit", "1")


def test_local_module_param_names_cannot_leave_sysfs(local: LocalTarget) -> None:
    for module, name in (("../..", "x"), ("udmabuf", "../list_limit"), ("udmabuf", "")):
        with pytest.raises(SetupError, match="letters, digits"):
            local.module_param(module, name)


# -- the model ----------------------------------------------------------------------------


def test_model_meminfo_is_a_page_account() -> None:
    m = ModelTarget()
    free = m.meminfo()["MemFree"]
    buf = m.allocate("model:reference", 3 * PAGE_SIZE)
    assert m.meminfo()["MemFree"] == free - 3 * PAGE_SIZE // 1024
    m.close(buf)
    assert m.meminfo() == {**m.meminfo(), "MemFree": free}


def test_model_leak_chunk_profile_keeps_one_page_per_buffer() -> None:
    m = ModelTarget()
    free = m.meminfo()["MemFree"]
    for _ in range(5):
        m.close(m.allocate("model:faulty-leak-chunk-on-release", 7 * PAGE_SIZE))
    assert free - m.meminfo()["MemFree"] == 5 * PAGE_SIZE // 1024


def test_model_udmabuf_parameters_are_enforced_as_set() -> None:
    m = ModelTarget()
    assert m.module_param("udmabuf", "list_limit") == "1024"
    assert m.module_param("udmabuf", "size_limit_mb") == "64"
    assert m.set_module_param("udmabuf", "list_limit", "2") == "1024"
    items = [(0, i * PAGE_SIZE, PAGE_SIZE) for i in range(3)]
    m.close(m.udmabuf_create("model:faulty-udmabuf-empty", [(3 * PAGE_SIZE, SEALED)], items[:2]))
    with pytest.raises(InvalidArgument):
        m.udmabuf_create("model:faulty-udmabuf-empty", [(3 * PAGE_SIZE, SEALED)], items)
    m.set_module_param("udmabuf", "size_limit_mb", "1")
    one_mib = [(1 << 20, SEALED)]
    m.close(m.udmabuf_create("model:faulty-udmabuf-empty", one_mib, [(0, 0, 1 << 20)]))
    with pytest.raises(InvalidArgument):
        m.udmabuf_create("model:faulty-udmabuf-empty", [((1 << 20) + PAGE_SIZE, SEALED)],
                         [(0, 0, (1 << 20) + PAGE_SIZE)])  # fmt: skip


def test_model_module_param_values_as_the_kernel_parses_them() -> None:
    m = ModelTarget()
    m.set_module_param("udmabuf", "list_limit", "0x10\n")
    assert m.module_param("udmabuf", "list_limit") == "16"
    with pytest.raises(InvalidArgument):
        m.set_module_param("udmabuf", "list_limit", "ten")
    with pytest.raises(NotAvailableOnTarget, match="udmabuf.list_limit"):
        m.module_param("udmabuf", "nope")


def test_model_release_direction_fault_shows_in_dma_api_debug() -> None:
    for exporter, errors in (("model:faulty-udmabuf-release-direction", 1),
                             ("model:faulty-udmabuf-empty", 0)):  # fmt: skip
        m = ModelTarget()
        buf = m.udmabuf_create(exporter, [(PAGE_SIZE, SEALED)], [(0, 0, PAGE_SIZE)])
        m.sync(buf, SyncFlag.START | SyncFlag.WRITE)
        m.sync(buf, SyncFlag.END | SyncFlag.WRITE)
        m.health()
        m.close(buf)
        health = m.health()
        assert health.dma_api_errors == errors, (exporter, health.log_excerpt)


def test_model_release_on_last_fd_frees_pages_under_an_attachment() -> None:
    m = ModelTarget()
    buf = m.allocate("model:faulty-release-on-last-fd", PAGE_SIZE)
    att = m.attach(buf, "coherent")
    m.map_attachment(att, Direction.BIDIRECTIONAL)
    m.device_write(att, 0, b"\x11" * 64)
    free = m.meminfo()["MemFree"]
    m.close(buf)
    assert m.live_buffers() == 1  # the buffer lives on: the attachment holds it
    assert m.meminfo()["MemFree"] == free + PAGE_SIZE // 1024  # but its page went back
    m.unmap_attachment(att, Direction.BIDIRECTIONAL)
    m.detach(att)
    assert m.live_buffers() == 0 and m.meminfo()["MemFree"] == free + PAGE_SIZE // 1024


# -- lockstep and the guest -----------------------------------------------------------------


def test_lockstep_sends_a_parameter_change_to_the_shadow_too() -> None:
    real, shadow = ModelTarget(), ModelTarget()
    checked = CheckedTarget(real, shadow)
    checked.set_module_param("udmabuf", "list_limit", "2")
    assert shadow.module_param("udmabuf", "list_limit") == "2"
    # meminfo differs between the two (the real one allocated): not a divergence
    real.allocate("model:reference", PAGE_SIZE)
    checked.meminfo()
    assert not any(s.diverged for s in checked.log.steps)


def test_guest_agent_and_qemu_target_serve_the_operations() -> None:
    agent = Agent(ModelTarget(), None)
    assert agent.dispatch("meminfo", [], {})["MemTotal"] > 0
    assert agent.dispatch("set_module_param", ["udmabuf", "list_limit", "3"], {}) == "1024"
    assert agent.dispatch("module_param", ["udmabuf", "list_limit"], {}) == "3"
    for op in ("meminfo", "module_param", "set_module_param"):
        assert op in FORWARDED and not getattr(QemuTarget, op).__isabstractmethod__, op


def test_lowered_fixture_restores_the_value_it_found(local: LocalTarget) -> None:
    from cases import test_udmabuf_limits

    fixture = test_udmabuf_limits.lowered.__wrapped__  # the generator pytest drives
    local.set_module_param("udmabuf", "size_limit_mb", "32")  # not the default: restored as found
    run = fixture(local)
    lower = next(run)
    lower("size_limit_mb", 1)
    lower("size_limit_mb", 2)  # lowered twice: the first value found is the one restored
    assert local.module_param("udmabuf", "size_limit_mb") == "2"
    with pytest.raises(StopIteration):
        next(run)  # teardown, as after a failed case
    assert local.module_param("udmabuf", "size_limit_mb") == "32"


def test_lowered_fixture_without_the_parameter_is_not_checked(local: LocalTarget) -> None:
    from cases import test_udmabuf_limits

    Path(local.sysfs_module_root, "udmabuf", "parameters", "list_limit").unlink()
    lower = next(test_udmabuf_limits.lowered.__wrapped__(local))
    with pytest.raises(pytest.skip.Exception, match="not checked: .*no module parameter"):
        lower("list_limit", 2)
