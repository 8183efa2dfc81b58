"""The probe importer in a QEMU guest, through QemuTarget (slow: boots its own guest).

Acceptance of issue 5: a system-heap buffer attached to the non-coherent probe
device, written by the device and unmapped, reads back through mmap after
SYNC START, and the event log shows the unmap FROM_DEVICE.  The same steps on
the system heap of the kernel mutant heap-system-unmap-skip-cpu-sync
(qemu/mutants/: unmap passes DMA_ATTR_SKIP_CPU_SYNC) lose the pattern, and the
log shows the unmap with SKIP_CPU_SYNC.
Also: an unprivileged open of /dev/dmabuf_probe is refused.

The guests boot with ``swiotlb=force`` so the non-coherent device really sees
a bounce copy (qemu/probe/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pytest

from conformance.qemu.kernel import KernelBuild
from conformance.records import Direction, DmaEvent, SyncFlag
from conformance.targets.qemu import QemuTarget

pytestmark = pytest.mark.slow

SIZE = 256 << 10  # below swiotlb's 256 KiB-per-segment limit in 64 KiB heap chunks
UNMAP_SKIPS_SYNC = "heap-system-unmap-skip-cpu-sync"  # the mutant kernel of qemu/mutants/


@pytest.fixture(scope="module")
def guest(probe_guest: QemuTarget) -> QemuTarget:
    return probe_guest


def _pattern(size: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(size))


def _device_write_unmap_cpu_read(t: QemuTarget, exporter: str) -> tuple[bytes, list[DmaEvent]]:
    """The acceptance sequence; returns what the CPU read and the device's events."""
    buf = t.allocate(exporter, SIZE)
    t.dma_events(None, clear=True)
    att = t.attach(buf, "noncoherent")
    segments = t.map_attachment(att, Direction.FROM_DEVICE)
    assert sum(s.length for s in segments) == SIZE
    t.device_write(att, 0, _pattern(SIZE))
    assert t.device_read(att, 0, SIZE) == _pattern(SIZE), "the device lost its own write"
    assert t.counters(buf)["attachments"] == 1
    t.unmap_attachment(att, Direction.FROM_DEVICE)
    t.detach(att)
    m = t.mmap(buf)
    t.sync(buf, SyncFlag.START | SyncFlag.READ)
    seen = t.cpu_read(m, 0, SIZE)
    t.sync(buf, SyncFlag.END | SyncFlag.READ)
    events = t.dma_events("noncoherent", clear=True)
    t.close_all()
    return seen, events


def test_probe_devices_match_the_standard_names(guest: QemuTarget) -> None:
    names = {d.name: d for d in guest.devices()}
    assert set(names) == {"coherent", "noncoherent", "smallseg"}
    assert names["coherent"].coherent and not names["noncoherent"].coherent
    assert names["smallseg"].max_segment == 65536


def test_system_heap_hands_the_device_write_back_at_unmap(guest: QemuTarget) -> None:
    seen, events = _device_write_unmap_cpu_read(guest, "heap:system")
    assert seen == _pattern(SIZE)
    unmaps = [e for e in events if e.op == "unmap_sg"]
    assert [(e.direction, e.skip_cpu_sync) for e in unmaps] == [(Direction.FROM_DEVICE, False)]
    assert unmaps[0].length == SIZE
    assert [e.op for e in events] == ["map_sg", "unmap_sg"]


def test_mutant_heap_loses_the_device_write(mutant_guest: Callable[[str], QemuTarget]) -> None:
    seen, events = _device_write_unmap_cpu_read(mutant_guest(UNMAP_SKIPS_SYNC), "heap:system")
    assert seen != _pattern(SIZE)
    assert seen == bytes(SIZE)  # the CPU still sees the zero-filled pages
    unmaps = [e for e in events if e.op == "unmap_sg"]
    assert [(e.direction, e.skip_cpu_sync) for e in unmaps] == [(Direction.FROM_DEVICE, True)]


def test_coherent_device_sees_cpu_writes_without_bounce(guest: QemuTarget) -> None:
    buf = guest.allocate("heap:system", 64 << 10)
    v = guest.vmap(buf)
    guest.vmap_write(v, 100, b"vmap!")
    assert guest.counters(buf)["vmap_count"] == 1
    att = guest.attach(buf, "coherent")
    guest.map_attachment(att, Direction.BIDIRECTIONAL)
    guest.vmap_write(v, 200, b"late")  # after map: only a snooping device sees it
    assert guest.device_read(att, 100, 5) == b"vmap!"
    assert guest.device_read(att, 200, 4) == b"late"
    guest.unmap_attachment(att, Direction.BIDIRECTIONAL)
    guest.vunmap(v)
    guest.close_all()


def test_noncoherent_device_misses_cpu_writes_after_map(guest: QemuTarget) -> None:
    """The bounce copy is what makes a missing sync visible: the control for the above."""
    buf = guest.allocate("heap:system", 64 << 10)
    v = guest.vmap(buf)
    att = guest.attach(buf, "noncoherent")
    guest.map_attachment(att, Direction.TO_DEVICE)
    guest.vmap_write(v, 200, b"late")
    assert guest.device_read(att, 200, 4) == bytes(4)
    guest.unmap_attachment(att, Direction.TO_DEVICE)
    guest.vunmap(v)
    guest.close_all()


def test_kernel_cpu_access_syncs_a_mapped_attachment_and_is_logged(
    guest: QemuTarget, kernel_build: KernelBuild
) -> None:
    """begin_cpu_access while mapped must sync for the CPU: the bounce copy comes back."""
    config = (Path(kernel_build.kdir) / ".config").read_text()
    if "CONFIG_DMABUF_DEBUG=y" in config and "CONFIG_DMA_API_DEBUG=y" in config:
        # 6.1's dma_buf_map_attachment mangles the exporter's own sg table in place
        # (DMABUF_DEBUG); the system heap syncs that table in begin_cpu_access and
        # debug_dma_sync_sg_for_cpu dereferences the mangled page: an oops.
        pytest.xfail("6.1 oopses: DMABUF_DEBUG mangling + DMA_API_DEBUG sync of a mapped table")
    buf = guest.allocate("heap:system", 64 << 10)
    att = guest.attach(buf, "noncoherent")
    guest.map_attachment(att, Direction.BIDIRECTIONAL)
    guest.device_write(att, 0, b"from the device")
    v = guest.vmap(buf)
    guest.dma_events(None, clear=True)
    assert guest.vmap_read(v, 0, 15) == bytes(15)  # not synced yet: the CPU sees the page
    guest.begin_cpu_access(buf, Direction.FROM_DEVICE)
    assert guest.vmap_read(v, 0, 15) == b"from the device"
    guest.end_cpu_access(buf, Direction.FROM_DEVICE)
    events = [(e.op, e.direction) for e in guest.dma_events("noncoherent", clear=True)]
    assert ("sync_sg_for_cpu", Direction.FROM_DEVICE) in events, events
    guest.vunmap(v)
    guest.unmap_attachment(att, Direction.BIDIRECTIONAL)
    guest.close_all()


def test_kmap_is_not_available_on_this_kernel(guest: QemuTarget) -> None:
    from conformance.errors import NotAvailableOnTarget

    buf = guest.allocate("heap:system", 4096)
    with pytest.raises(NotAvailableOnTarget):
        guest.kmap(buf, 0)
    guest.close_all()


def test_non_root_open_is_refused(guest: QemuTarget) -> None:
    code = (
        "import errno, os\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    os.open('/dev/dmabuf_probe', os.O_RDWR)\n"
        "    print('OPENED')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
    )
    r = guest.call("exec", [sys.executable, "-c", code])
    assert r["returncode"] == 0, r["stderr"]
    assert r["stdout"].strip() in {"EACCES", "EPERM"}, r


def test_bounced_device_reports_and_enforces_the_swiotlb_segment_limit(guest: QemuTarget) -> None:
    """A 1 MiB system-heap chunk cannot bounce: the map fails, as on swiotlb hardware."""
    from conformance.errors import KernelError

    limits = guest.call("exec", [sys.executable, "-c", _MAX_MAPPING])
    assert limits["stdout"].split() == ["coherent=0", "noncoherent=262144", "smallseg=262144"]
    buf = guest.allocate("heap:system", 1 << 20)
    att = guest.attach(buf, "noncoherent")
    with pytest.raises(KernelError) as exc:
        guest.map_attachment(att, Direction.BIDIRECTIONAL)
    assert exc.value.errno_name == "EIO"
    guest.close_all()


_MAX_MAPPING = (
    "from conformance.probe import ProbeClient\n"
    "with ProbeClient() as p:\n"
    "    print(*(f'{d.name}={p.max_mapping(d.name)}' for d in p.devices()))\n"
)


# Raw ioctls with values the client would never send: each must come back
# EINVAL, and the machine must live (DMA_NONE reaching dma_map_sg BUG_ONs).
_BAD_VALUES = r"""
import ctypes, errno, fcntl, json
from conformance.exporters.discovery import discover
from conformance.probe import uapi
from conformance.probe.client import ProbeClient

R = uapi.Request
buf = {e.name: e for e in discover()}["heap:system"].allocate(16384)
p = ProbeClient()
fd = p.fileno()
att = p.attach(buf.fd, "noncoherent")
out = {}

def call(name, req, struct):
    try:
        fcntl.ioctl(fd, req, struct, True)
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]

call("map DMA_NONE", R.DMABUF_PROBE_IOC_MAP, uapi.Map(id=att, direction=3))
call("map direction 7", R.DMABUF_PROBE_IOC_MAP, uapi.Map(id=att, direction=7))
call("map pad", R.DMABUF_PROBE_IOC_MAP, uapi.Map(id=att, direction=0, pad=1))
call("map unknown id", R.DMABUF_PROBE_IOC_MAP, uapi.Map(id=9999, direction=0))
call("begin DMA_NONE", R.DMABUF_PROBE_IOC_BEGIN_CPU_ACCESS, uapi.CpuAccess(fd=buf.fd, direction=3))
call("end direction 9", R.DMABUF_PROBE_IOC_END_CPU_ACCESS, uapi.CpuAccess(fd=buf.fd, direction=9))
call("detach pad", R.DMABUF_PROBE_IOC_DETACH, uapi.Handle(id=att, pad=1))
call("detach unknown id", R.DMABUF_PROBE_IOC_DETACH, uapi.Handle(id=9999))
call("vunmap unknown id", R.DMABUF_PROBE_IOC_VUNMAP, uapi.Handle(id=9999))
call("device index", R.DMABUF_PROBE_IOC_DEVICE_INFO, uapi.DeviceInfo(index=3))
call("events device", R.DMABUF_PROBE_IOC_EVENTS, uapi.Events(device=3))
call("events flags", R.DMABUF_PROBE_IOC_EVENTS, uapi.Events(device=uapi.ALL_DEVICES, flags=2))
call("counters pad", R.DMABUF_PROBE_IOC_COUNTERS, uapi.Counters(fd=buf.fd, pad=1))
call("attach unterminated", R.DMABUF_PROBE_IOC_ATTACH, uapi.Attach(device=b"x" * 32, fd=buf.fd))
call("attach unknown", R.DMABUF_PROBE_IOC_ATTACH, uapi.Attach(device=b"nosuch", fd=buf.fd))
p.map(att, 0)
call("unmap DMA_NONE", R.DMABUF_PROBE_IOC_UNMAP, uapi.Map(id=att, direction=3))
data = ctypes.create_string_buffer(16)
call("read pad", R.DMABUF_PROBE_IOC_DEVICE_READ,
     uapi.Rw(id=att, pad=1, offset=0, length=16, data=ctypes.addressof(data)))
call("read past end", R.DMABUF_PROBE_IOC_DEVICE_READ,
     uapi.Rw(id=att, offset=16380, length=16, data=ctypes.addressof(data)))
p.unmap(att, 0)
print(json.dumps(out))
"""


def test_the_probe_refuses_every_bad_value_with_einval(guest: QemuTarget) -> None:
    import json

    from conformance.errors import InvalidArgument

    r = guest.call("exec", [sys.executable, "-c", _BAD_VALUES])
    assert r["returncode"] == 0, r["stderr"]
    answers = json.loads(r["stdout"])
    assert answers == {name: "EINVAL" for name in answers}, answers
    assert len(answers) == 18
    # the same through the target: DMA_NONE is InvalidArgument, and the guest lives on
    buf = guest.allocate("heap:system", 4096)
    att = guest.attach(buf, "noncoherent")
    with pytest.raises(InvalidArgument):
        guest.map_attachment(att, Direction.NONE)
    with pytest.raises(InvalidArgument):
        guest.begin_cpu_access(buf, Direction.NONE)
    assert sum(s.length for s in guest.map_attachment(att, Direction.TO_DEVICE)) == 4096
    guest.close_all()


_OVERFLOW = r"""
from conformance.errors import EventsDropped
from conformance.exporters.discovery import discover
from conformance.probe.client import ProbeClient

buf = {e.name: e for e in discover()}["heap:system"].allocate(4096)
with ProbeClient() as p:
    p.clear_events()
    att = p.attach(buf.fd, "coherent")
    for _ in range(2100):  # 4200 events: more than the 4096 a device's log holds
        p.map(att, 0)
        p.unmap(att, 0)
    try:
        p.dma_events("coherent")
        print("no error")
    except EventsDropped as e:
        print("dropped:", e)
    print("then:", len(p.dma_events("coherent")))
"""


def test_a_log_that_dropped_events_is_an_error_not_a_short_log(guest: QemuTarget) -> None:
    r = guest.call("exec", [sys.executable, "-c", _OVERFLOW])
    assert r["returncode"] == 0, r["stderr"]
    lines = r["stdout"].splitlines()
    prefix = "dropped: the probe's DMA event log dropped "
    assert lines[0].startswith(prefix), lines
    assert int(lines[0][len(prefix) :].split()[0]) > 0
    assert lines[1] == "then: 0"  # read empty: the drop is reported once


_CLEARED = r"""
from conformance.exporters.discovery import discover
from conformance.probe.client import ProbeClient

buf = {e.name: e for e in discover()}["heap:system"].allocate(4096)
with ProbeClient() as p:
    att = p.attach(buf.fd, "coherent")
    for _ in range(2100):  # a full log that dropped events: many of clear_events' batches
        p.map(att, 0)
        p.unmap(att, 0)
    p.clear_events()
    print("after clear:", len(p.dma_events("coherent")))
"""


def test_clearing_empties_a_full_log_and_forgets_its_drops(guest: QemuTarget) -> None:
    r = guest.call("exec", [sys.executable, "-c", _CLEARED])
    assert r["returncode"] == 0, r["stderr"]  # no EventsDropped after the clear
    assert r["stdout"].splitlines() == ["after clear: 0"]


def test_the_exporter_op_log_shows_what_the_core_shields(guest: QemuTarget) -> None:
    """6.1's dma_buf_vmap counts users: the system heap is asked to vmap once, vunmap once."""
    from conformance.records import EXPORTER_LOG

    buf = guest.allocate("heap:system", 64 << 10)
    guest.counters(buf)  # names the buffer: the system heap's ops get their kprobes
    guest.dma_events(EXPORTER_LOG)
    first, second = guest.vmap(buf), guest.vmap(buf)
    guest.vunmap(first)
    assert [e.op for e in guest.dma_events(EXPORTER_LOG)] == ["vmap"]
    guest.vunmap(second)
    guest.sync(buf, SyncFlag.START | SyncFlag.READ)
    guest.sync(buf, SyncFlag.END | SyncFlag.READ)
    events = guest.dma_events(EXPORTER_LOG)
    assert [(e.op, e.direction) for e in events] == [
        ("vunmap", Direction.NONE),
        ("begin_cpu_access", Direction.FROM_DEVICE),
        ("end_cpu_access", Direction.FROM_DEVICE),
    ]
    assert all(e.device == EXPORTER_LOG and e.length == 64 << 10 for e in events)
    # the device logs never carry the exporter's own calls
    assert all(e.device != EXPORTER_LOG for e in guest.dma_events(None))
    guest.close_all()


def test_the_guest_reports_its_instruments(guest: QemuTarget, kernel_build: KernelBuild) -> None:
    from conformance.records import INSTRUMENTS

    instruments = guest.info().instruments
    assert set(instruments) == set(INSTRUMENTS)
    missing = {n: i.detail for n, i in instruments.items() if not i.present}
    config = (Path(kernel_build.kdir) / ".config").read_text()
    if "CONFIG_DMA_API_DEBUG=y" not in config:
        missing.pop("dma_api_debug", None)
    assert not missing, missing
    assert "swiotlb=force" in instruments["swiotlb_bounce"].detail
    assert guest.info().page_size == 4096
