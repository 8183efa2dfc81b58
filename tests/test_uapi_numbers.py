"""Our ctypes bindings against the C headers: request numbers, sizes, field offsets.

A C program is generated from our own struct definitions, compiled with gcc
against the system's uapi headers, and its output compared with ctypes.  So a
wrong number, a missing field or a field of the wrong width fails here.

Headers: dma-heap.h, dma-buf.h and udmabuf.h from linux-libc-dev; DRM from
/usr/include/drm (newer linux-libc-dev), else libdrm-dev's /usr/include/libdrm,
else extracted from /usr/src/linux-source-*.tar.xz; ION from the struct text
of its last staging header, copied below (no package ships it any more).
"""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conformance.uapi import dma_buf, dma_heap, drm, ion, memfd, udmabuf
from conformance.uapi.ioc import GENERIC, IOWR, LAYOUT, THIRTEEN_BIT, decode, layout_for
from conformance.uapi.ioctl import ioctl, request_name
from conformance.uapi.requests import Request

# drivers/staging/android/uapi/ion.h, torvalds/linux 36c2e4d70ce8 (= v5.10),
# struct and request text copied verbatim.
ION_HEADER = r"""
#include <linux/ioctl.h>
#include <linux/types.h>
struct ion_allocation_data {
	__u64 len;
	__u32 heap_id_mask;
	__u32 flags;
	__u32 fd;
	__u32 unused;
};
#define MAX_HEAP_NAME			32
struct ion_heap_data {
	char name[MAX_HEAP_NAME];
	__u32 type;
	__u32 heap_id;
	__u32 reserved0;
	__u32 reserved1;
	__u32 reserved2;
};
struct ion_heap_query {
	__u32 cnt; /* Total number of heaps to be copied */
	__u32 reserved0; /* align to 64bits */
	__u64 heaps; /* buffer to be populated */
	__u32 reserved1;
	__u32 reserved2;
};
#define ION_IOC_MAGIC		'I'
#define ION_IOC_ALLOC		_IOWR(ION_IOC_MAGIC, 0, \
					struct ion_allocation_data)
#define ION_IOC_HEAP_QUERY     _IOWR(ION_IOC_MAGIC, 8, \
					struct ion_heap_query)
"""

# Numbers written down from the ION header above (generic _IOC layout).
ION_WRITTEN_DOWN = {
    "ION_IOC_ALLOC": 0xC0184900,
    "ION_IOC_HEAP_QUERY": 0xC0184908,
    "sizeof(struct ion_allocation_data)": 24,
    "sizeof(struct ion_heap_data)": 52,
    "sizeof(struct ion_heap_query)": 24,
}

STRUCTS: list[type[ctypes.Structure]] = [
    dma_heap.dma_heap_allocation_data,
    dma_buf.dma_buf_sync,
    dma_buf.dma_buf_export_sync_file,
    dma_buf.dma_buf_import_sync_file,
    udmabuf.udmabuf_create,
    udmabuf.udmabuf_create_item,
    udmabuf.udmabuf_create_list,
    drm.drm_version,
    drm.drm_gem_close,
    drm.drm_prime_handle,
    drm.drm_mode_create_dumb,
    drm.drm_mode_map_dumb,
    drm.drm_mode_destroy_dumb,
    ion.ion_allocation_data,
    ion.ion_heap_data,
    ion.ion_heap_query,
]

CONSTANTS: dict[str, int] = {
    "DMA_HEAP_VALID_FD_FLAGS": dma_heap.DMA_HEAP_VALID_FD_FLAGS,
    "DMA_HEAP_VALID_HEAP_FLAGS": dma_heap.DMA_HEAP_VALID_HEAP_FLAGS,
    "DMA_BUF_SYNC_READ": dma_buf.DMA_BUF_SYNC_READ,
    "DMA_BUF_SYNC_WRITE": dma_buf.DMA_BUF_SYNC_WRITE,
    "DMA_BUF_SYNC_RW": dma_buf.DMA_BUF_SYNC_RW,
    "DMA_BUF_SYNC_START": dma_buf.DMA_BUF_SYNC_START,
    "DMA_BUF_SYNC_END": dma_buf.DMA_BUF_SYNC_END,
    "DMA_BUF_SYNC_VALID_FLAGS_MASK": dma_buf.DMA_BUF_SYNC_VALID_FLAGS_MASK,
    "DMA_BUF_NAME_LEN": dma_buf.DMA_BUF_NAME_LEN,
    "UDMABUF_FLAGS_CLOEXEC": udmabuf.UDMABUF_FLAGS_CLOEXEC,
    "DRM_CLOEXEC": drm.DRM_CLOEXEC,
    "DRM_RDWR": drm.DRM_RDWR,
    "MAX_HEAP_NAME": ion.MAX_HEAP_NAME,
    # written out for boards' Python 3.7, whose os/fcntl lack them
    **{name: getattr(memfd, name) for name in (
        "MFD_CLOEXEC", "MFD_ALLOW_SEALING", "MFD_HUGETLB", "F_ADD_SEALS", "F_GET_SEALS",
        "F_SEAL_SEAL", "F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_WRITE", "F_SEAL_FUTURE_WRITE")},
}


def _extract_drm_headers(tarball: Path, out: Path) -> None:
    """drm.h and drm_mode.h from a kernel source tarball (one pass, ~20 s for xz)."""
    if (out / "drm.h").exists() and (out / "drm_mode.h").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tf:
        for member in tf:
            if member.name.endswith(("include/uapi/drm/drm.h", "include/uapi/drm/drm_mode.h")):
                f = tf.extractfile(member)
                assert f is not None
                (out / os.path.basename(member.name)).write_bytes(f.read())
            if (out / "drm.h").exists() and (out / "drm_mode.h").exists():
                return


def _find_drm_include(cache: Path) -> tuple[str, str] | None:
    """(-I dir, include prefix) for drm.h + drm_mode.h, or None."""
    if Path("/usr/include/drm/drm_mode.h").exists():
        return ("/usr/include", "drm/")
    if Path("/usr/include/libdrm/drm_mode.h").exists():
        return ("/usr/include/libdrm", "")
    tarballs = sorted(glob.glob("/usr/src/linux-source-*.tar.xz"))
    if not tarballs:
        return None
    _extract_drm_headers(Path(tarballs[-1]), cache / "drm")
    return (str(cache), "drm/")


def _c_program(drm_prefix: str) -> str:
    lines = [
        "#define _GNU_SOURCE",  # glibc's F_SEAL_* and MFD_*
        "#include <stdio.h>",
        "#include <sys/mman.h>",
        "#include <stddef.h>",
        "#include <fcntl.h>",
        "#include <linux/dma-heap.h>",
        "#include <linux/dma-buf.h>",
        "#include <linux/udmabuf.h>",
        f'#include "{drm_prefix}drm.h"',
        f'#include "{drm_prefix}drm_mode.h"',
        ION_HEADER,
        "int main(void) {",
    ]
    for req in Request:
        lines.append(f'  printf("req {req.name} %lu\\n", (unsigned long)({req.name}));')
    # the legacy SET_NAME is an alias in the enum: check it explicitly too
    lines.append('  printf("req DMA_BUF_SET_NAME %lu\\n", (unsigned long)(DMA_BUF_SET_NAME));')
    for name in CONSTANTS:
        lines.append(f'  printf("const {name} %lu\\n", (unsigned long)({name}));')
    for s in STRUCTS:
        c = f"struct {s.__name__}"
        lines.append(f'  printf("size {s.__name__} %zu\\n", sizeof({c}));')
        for field, *_ in s._fields_:
            lines.append(
                f'  printf("field {s.__name__}.{field} %zu %zu\\n", '
                f"offsetof({c}, {field}), sizeof((({c} *)0)->{field}));"
            )
    lines += ["  return 0;", "}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def c_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, ...]]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed: cannot compile the header check")
    for h in ("dma-heap.h", "dma-buf.h", "udmabuf.h"):
        if not Path("/usr/include/linux", h).exists():
            pytest.skip(f"/usr/include/linux/{h} missing: install linux-libc-dev")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    drm_inc = _find_drm_include(cache / "dmabuf-conformance" / "uapi-headers")
    if drm_inc is None:
        pytest.skip("no DRM uapi headers: install libdrm-dev (or linux-source-6.1)")
    tmp = tmp_path_factory.mktemp("uapi")
    src = tmp / "check.c"
    src.write_text(_c_program(drm_inc[1]))
    exe = tmp / "check"
    subprocess.run([gcc, "-I", drm_inc[0], "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    values: dict[str, tuple[int, ...]] = {}
    for line in out.splitlines():
        kind, name, *nums = line.split()
        values[f"{kind} {name}"] = tuple(int(n) for n in nums)
    return values


def _ours(name: str) -> int:
    for module in (dma_heap, dma_buf, udmabuf, drm, ion):
        if hasattr(module, name):
            return int(getattr(module, name))
    raise AssertionError(f"{name} is in Request but in no uapi module")


@pytest.mark.skipif(LAYOUT is not GENERIC, reason="numbers below are for the generic _IOC layout")
@pytest.mark.parametrize("name", [r.name for r in Request] + ["DMA_BUF_SET_NAME"])
def test_request_number_matches_header(c_values: dict[str, tuple[int, ...]], name: str) -> None:
    ours = _ours(name)
    c_number = c_values[f"req {name}"][0]
    assert c_number == ours, f"{name}: header {c_number:#x}, ours {ours:#x}"
    assert int(Request[name]) == ours


@pytest.mark.parametrize("name", list(CONSTANTS))
def test_constant_matches_header(c_values: dict[str, tuple[int, ...]], name: str) -> None:
    assert c_values[f"const {name}"] == (CONSTANTS[name],)


@pytest.mark.parametrize("struct", STRUCTS, ids=lambda s: s.__name__)
def test_struct_layout_matches_header(
    c_values: dict[str, tuple[int, ...]], struct: type[ctypes.Structure]
) -> None:
    assert c_values[f"size {struct.__name__}"] == (ctypes.sizeof(struct),), "sizeof"
    for field, ctype in struct._fields_:
        ours = (getattr(struct, field).offset, ctypes.sizeof(ctype))
        assert c_values[f"field {struct.__name__}.{field}"] == ours, field


@pytest.mark.skipif(LAYOUT is not GENERIC, reason="written down for the generic _IOC layout")
def test_ion_numbers_as_written_down(c_values: dict[str, tuple[int, ...]]) -> None:
    assert ion.ION_IOC_ALLOC == ION_WRITTEN_DOWN["ION_IOC_ALLOC"]
    assert ion.ION_IOC_HEAP_QUERY == ION_WRITTEN_DOWN["ION_IOC_HEAP_QUERY"]
    assert ctypes.sizeof(ion.ion_allocation_data) == 24
    assert ctypes.sizeof(ion.ion_heap_data) == 52
    assert ctypes.sizeof(ion.ion_heap_query) == 24
    # and the compiled copy of the header agrees with what we wrote down
    assert c_values["req ION_IOC_ALLOC"] == (0xC0184900,)
    assert c_values["req ION_IOC_HEAP_QUERY"] == (0xC0184908,)


def test_legacy_set_name_is_the_pointer_sized_encoding() -> None:
    expected = (
        dma_buf.DMA_BUF_SET_NAME_B
        if ctypes.sizeof(ctypes.c_void_p) == 8
        else (dma_buf.DMA_BUF_SET_NAME_A)
    )
    assert dma_buf.DMA_BUF_SET_NAME == expected
    assert Request(dma_buf.DMA_BUF_SET_NAME).name in ("DMA_BUF_SET_NAME_A", "DMA_BUF_SET_NAME_B")


def test_alloc_request_variants_encode_struct_size() -> None:
    assert dma_heap.alloc_request() == dma_heap.DMA_HEAP_IOCTL_ALLOC
    short = dma_heap.alloc_request(16)
    assert decode(short).size == 16
    assert decode(short).nr == decode(dma_heap.DMA_HEAP_IOCTL_ALLOC).nr
    assert request_name(short) == "DMA_HEAP_IOCTL_ALLOC[size=16]"
    assert request_name(dma_heap.alloc_request(32)) == "DMA_HEAP_IOCTL_ALLOC[size=32]"
    assert request_name(0xDEAD) == "ioctl(0xdead)"


def test_thirteen_bit_layout_is_data() -> None:
    # powerpc: _IOWR('H', 0, 24) with dir read|write = 6 at bit 29, size at 16
    assert layout_for("ppc64le") is THIRTEEN_BIT
    assert layout_for("x86_64") is GENERIC and layout_for("aarch64") is GENERIC
    n = IOWR("H", 0, dma_heap.dma_heap_allocation_data, THIRTEEN_BIT)
    assert n == (6 << 29) | (24 << 16) | (ord("H") << 8)
    with pytest.raises(ValueError):
        IOWR("H", 0, 1 << 13, THIRTEEN_BIT)


def test_ioctl_error_names_request() -> None:
    from conformance.errors import NotATypewriter

    r, w = os.pipe()
    try:
        with pytest.raises(NotATypewriter) as ei:
            ioctl(r, Request.DMA_BUF_IOCTL_SYNC, dma_buf.dma_buf_sync(flags=3))
        assert ei.value.op == "DMA_BUF_IOCTL_SYNC"
        assert ei.value.arg == {"flags": 3}
        assert "DMA_BUF_IOCTL_SYNC" in str(ei.value)
    finally:
        os.close(r)
        os.close(w)


def test_ioctl_writes_back_into_struct() -> None:
    # FIONREAD (_IOR-less legacy 0x541B) fills an int: proves the buffer round-trips
    import termios

    r, w = os.pipe()
    try:
        os.write(w, b"12345")
        n = ctypes.c_int(0)
        ioctl(r, termios.FIONREAD, n)
        assert n.value == 5
    finally:
        os.close(r)
        os.close(w)
