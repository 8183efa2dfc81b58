"""ctypes mirror of qemu/probe/dmabuf_probe.h (the single source of the ABI).

tests/test_probe_uapi.py compiles the header and checks every request number,
struct size and field offset here against it: change both together.
"""

from __future__ import annotations

import ctypes
import enum

from conformance.uapi.ioc import IOR, IOW, IOWR

ABI_VERSION = 2
MAGIC = 0xDB  # DMABUF_PROBE_IOC_MAGIC
NAME_LEN = 32
MAX_RW = 64 << 20
ALL_DEVICES = 0xFFFFFFFF
EXPORTER_LOG = 0xFFFFFFFE  # the exporter-op log, not a device

# DMABUF_PROBE_HAVE_*
HAVE_KMAP = 1 << 0
HAVE_KPROBES = 1 << 1
HAVE_EXPORTER_LOG = 1 << 2
# DMABUF_PROBE_DEV_*
DEV_COHERENT = 1 << 0
DEV_BOUNCE = 1 << 1
# DMABUF_PROBE_EVENT_* / DMABUF_PROBE_EVENTS_*
EVENT_SKIP_CPU_SYNC = 1 << 0
EVENTS_CLEAR = 1 << 0


class Info(ctypes.Structure):
    _fields_ = [
        ("abi_version", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("num_devices", ctypes.c_uint32),
        ("kernel_version", ctypes.c_uint32),
    ]


class DeviceInfo(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("max_segment", ctypes.c_uint64),
        ("segment_boundary", ctypes.c_uint64),
        ("max_mapping", ctypes.c_uint64),
        ("name", ctypes.c_char * NAME_LEN),
    ]


class Attach(ctypes.Structure):
    _fields_ = [
        ("device", ctypes.c_char * NAME_LEN),
        ("fd", ctypes.c_int32),
        ("id", ctypes.c_uint32),
    ]


class Handle(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class Map(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("direction", ctypes.c_uint32),
        ("nents", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


class Segment(ctypes.Structure):
    _fields_ = [("dma_address", ctypes.c_uint64), ("length", ctypes.c_uint64)]


class Sg(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("count", ctypes.c_uint32),
        ("segments", ctypes.c_uint64),
    ]


class Rw(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("offset", ctypes.c_uint64),
        ("length", ctypes.c_uint64),
        ("data", ctypes.c_uint64),
    ]


class CpuAccess(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int32), ("direction", ctypes.c_uint32)]


class Vmap(ctypes.Structure):
    _fields_ = [
        ("fd", ctypes.c_int32),
        ("id", ctypes.c_uint32),
        ("size", ctypes.c_uint64),
    ]


class Kmap(ctypes.Structure):
    _fields_ = [
        ("fd", ctypes.c_int32),
        ("page", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


class Counters(ctypes.Structure):
    _fields_ = [
        ("fd", ctypes.c_int32),
        ("pad", ctypes.c_uint32),
        ("attachments", ctypes.c_int64),
        ("maps", ctypes.c_int64),
        ("vmap_count", ctypes.c_int64),
    ]


class Event(ctypes.Structure):
    _fields_ = [
        ("seq", ctypes.c_uint64),
        ("length", ctypes.c_uint64),
        ("device", ctypes.c_uint32),
        ("op", ctypes.c_uint32),
        ("direction", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    ]


class Events(ctypes.Structure):
    _fields_ = [
        ("device", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("count", ctypes.c_uint32),
        ("dropped", ctypes.c_uint32),
        ("events", ctypes.c_uint64),
    ]


class Op(enum.IntEnum):
    """DMABUF_PROBE_OP_*; names are the DmaEvent.op vocabulary."""

    map_sg = 1
    unmap_sg = 2
    sync_sg_for_cpu = 3
    sync_sg_for_device = 4
    map_page = 5
    unmap_page = 6
    sync_single_for_cpu = 7
    sync_single_for_device = 8
    # the exporter's own dma_buf_ops (DMABUF_PROBE_OP_EXPORTER_*)
    exporter_vmap = 9
    exporter_vunmap = 10
    exporter_begin_cpu_access = 11
    exporter_end_cpu_access = 12


class Request(enum.IntEnum):
    """Request numbers, named as in the header so errors print the C name."""

    DMABUF_PROBE_IOC_INFO = IOR(MAGIC, 0, Info)
    DMABUF_PROBE_IOC_DEVICE_INFO = IOWR(MAGIC, 1, DeviceInfo)
    DMABUF_PROBE_IOC_ATTACH = IOWR(MAGIC, 2, Attach)
    DMABUF_PROBE_IOC_DETACH = IOW(MAGIC, 3, Handle)
    DMABUF_PROBE_IOC_MAP = IOWR(MAGIC, 4, Map)
    DMABUF_PROBE_IOC_UNMAP = IOW(MAGIC, 5, Map)
    DMABUF_PROBE_IOC_SG = IOWR(MAGIC, 6, Sg)
    DMABUF_PROBE_IOC_DEVICE_READ = IOW(MAGIC, 7, Rw)
    DMABUF_PROBE_IOC_DEVICE_WRITE = IOW(MAGIC, 8, Rw)
    DMABUF_PROBE_IOC_BEGIN_CPU_ACCESS = IOW(MAGIC, 9, CpuAccess)
    DMABUF_PROBE_IOC_END_CPU_ACCESS = IOW(MAGIC, 10, CpuAccess)
    DMABUF_PROBE_IOC_VMAP = IOWR(MAGIC, 11, Vmap)
    DMABUF_PROBE_IOC_VUNMAP = IOW(MAGIC, 12, Handle)
    DMABUF_PROBE_IOC_VMAP_READ = IOW(MAGIC, 13, Rw)
    DMABUF_PROBE_IOC_VMAP_WRITE = IOW(MAGIC, 14, Rw)
    DMABUF_PROBE_IOC_KMAP = IOWR(MAGIC, 15, Kmap)
    DMABUF_PROBE_IOC_KUNMAP = IOW(MAGIC, 16, Handle)
    DMABUF_PROBE_IOC_COUNTERS = IOWR(MAGIC, 17, Counters)
    DMABUF_PROBE_IOC_EVENTS = IOWR(MAGIC, 18, Events)


# Every struct the header defines, by its C name (for the layout test).
STRUCTS: dict[str, type[ctypes.Structure]] = {
    "dmabuf_probe_info": Info,
    "dmabuf_probe_device_info": DeviceInfo,
    "dmabuf_probe_attach": Attach,
    "dmabuf_probe_handle": Handle,
    "dmabuf_probe_map": Map,
    "dmabuf_probe_segment": Segment,
    "dmabuf_probe_sg": Sg,
    "dmabuf_probe_rw": Rw,
    "dmabuf_probe_cpu_access": CpuAccess,
    "dmabuf_probe_vmap": Vmap,
    "dmabuf_probe_kmap": Kmap,
    "dmabuf_probe_counters": Counters,
    "dmabuf_probe_event": Event,
    "dmabuf_probe_events": Events,
}

# Plain constants of the header, by C name (for the same test).
CONSTANTS: dict[str, int] = {
    "DMABUF_PROBE_ABI_VERSION": ABI_VERSION,
    "DMABUF_PROBE_NAME_LEN": NAME_LEN,
    "DMABUF_PROBE_MAX_RW": MAX_RW,
    "DMABUF_PROBE_ALL_DEVICES": ALL_DEVICES,
    "DMABUF_PROBE_EXPORTER_LOG": EXPORTER_LOG,
    "DMABUF_PROBE_HAVE_EXPORTER_LOG": HAVE_EXPORTER_LOG,
    "DMABUF_PROBE_HAVE_KMAP": HAVE_KMAP,
    "DMABUF_PROBE_HAVE_KPROBES": HAVE_KPROBES,
    "DMABUF_PROBE_DEV_COHERENT": DEV_COHERENT,
    "DMABUF_PROBE_DEV_BOUNCE": DEV_BOUNCE,
    "DMABUF_PROBE_EVENT_SKIP_CPU_SYNC": EVENT_SKIP_CPU_SYNC,
    "DMABUF_PROBE_EVENTS_CLEAR": EVENTS_CLEAR,
    "DMABUF_PROBE_IOC_MAGIC": MAGIC,
    **{f"DMABUF_PROBE_OP_{op.name.upper()}": int(op) for op in Op},
}
