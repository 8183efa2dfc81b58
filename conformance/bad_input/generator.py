"""Seeded generation of bad inputs, per exporter kind.

``generate(kind, n, seed)`` returns ``n`` inputs, the same for the same
arguments on every machine (``random.Random(seed)``, no global state).  The
categories of the kind (``categories(kind)``) take turns, so each gets an
equal share and none is missing from a run.  Each input breaks one rule of
the uapi by construction (``must_fail``), or is a nearby valid one (a name of
31 bytes, an overlap udmabuf accepts) so that a boundary moved either way
shows.  Valid inputs are kept cheap: small buffers, and nothing that stays
(every object an input makes is closed by the runner).

Rules and errnos come from drivers/dma-buf/{dma-buf,dma-heap,udmabuf}.c,
drivers/gpu/drm/{drm_prime,drm_gem,drm_dumb_buffers}.c and mm/mmap.c of 6.1;
../shared/notes/uapi-facts.md summarises them.
"""

from __future__ import annotations

import os
import random
from typing import Callable

from conformance.bad_input import inputs as I  # noqa: N812 - a namespace of constants
from conformance.bad_input.inputs import Input
from conformance.uapi.memfd import F_SEAL_FUTURE_WRITE, F_SEAL_SHRINK, F_SEAL_WRITE

FIXTURE_PAGES = 4  # the dma-buf every fixture input works on, in pages
MEMFD_PAGES = 4  # each memfd of a udmabuf input, unless the input is about its size
SEALED = F_SEAL_SHRINK  # what udmabuf wants
UDMABUF_LIST_LIMIT = 1024  # udmabuf.c's default list_limit
UDMABUF_SIZE_LIMIT = 64 << 20  # udmabuf.c's default size_limit_mb, in bytes
DRM_CLOEXEC, DRM_RDWR = os.O_CLOEXEC, os.O_RDWR
U32, U64 = (1 << 32) - 1, (1 << 64) - 1
BAD_FDS = ("closed", "huge", "neg", "pipe", "memfd", "dmabuf", "device")
BAD_MEMFDS = ("closed", "huge", "neg", "pipe", "dmabuf", "device")  # all but a memfd

Builder = Callable[[random.Random, int], Input]


def _bits(rng: random.Random, width: int) -> int:
    """A value of ``width`` bits, spread over the shapes bugs care about."""
    shape = rng.randrange(5)
    if shape == 0:
        return 1 << rng.randrange(width)
    if shape == 1:
        return rng.getrandbits(width)
    if shape == 2:
        return rng.randrange(16)
    if shape == 3:
        return (1 << width) - 1 - rng.randrange(4)
    return rng.getrandbits(8) << rng.randrange(width - 7)


def _small_len(rng: random.Random, page: int) -> int:
    """A valid buffer length: 1..4 pages, sometimes not a page multiple."""
    n = rng.randrange(1, 5) * page
    return n - rng.randrange(page) if rng.random() < 0.3 else n


# -- on every exporter: the dma-buf file ---------------------------------------------
def sync_flags(rng: random.Random, page: int) -> Input:
    while True:
        flags = rng.choice(
            [_bits(rng, 64), 1 << rng.randrange(3, 64) | rng.randrange(8), 4, 0,
             rng.randrange(8) | (rng.randrange(1, 32) << 3)]
        )  # fmt: skip
        if flags & ~7 or not flags & 3:  # dma-buf.c:455-469
            return Input("sync-flags", "sync", (flags, "ok"))


def dmabuf_request(rng: random.Random, page: int) -> Input:
    while True:
        d = rng.choice(I.DIRS)
        nr = rng.randrange(4) if rng.random() < 0.8 else rng.randrange(256)
        size = rng.choice([0, 1, 4, 7, 8, 9, 12, 16, 24, 32, rng.randrange(I.MAX_IOC_SIZE + 1)])
        if (d, nr, size) not in I.DMA_BUF_REQUESTS:
            return Input("dmabuf-request", "dmabuf_ioctl", (d, nr, size))


def set_name(rng: random.Random, page: int) -> Input:
    request = rng.choice(I.SET_NAME_REQUESTS)
    shape = rng.randrange(6)
    if shape == 0:  # oversize: strndup_user(buf, DMA_BUF_NAME_LEN) -> EINVAL
        length = rng.choice([32, 33, 64, rng.randrange(32, 4096)])
        nul = rng.choice([-1, rng.randrange(32, length + 1)])
        return Input("set-name", "set_name", (request, length, nul, "normal"))
    if shape == 1:  # the longest names that fit, or a NUL early in a long one
        length = rng.randrange(0, 32) if rng.random() < 0.5 else rng.randrange(32, 300)
        nul = -1 if length < 32 else rng.randrange(0, 32)
        return Input("set-name", "set_name", (request, length, nul, "normal"), must_fail=False)
    if shape == 2:  # no NUL before an unmapped page, short: strnlen_user faults -> EFAULT
        return Input("set-name", "set_name", (request, rng.randrange(0, 32), -1, "guard"))
    if shape == 3:  # no NUL before an unmapped page, 32 or more bytes: EINVAL
        length = rng.randrange(32, 200)
        return Input("set-name", "set_name", (request, length, -1, "guard"))
    if shape == 4:  # a NUL before the unmapped page: a valid name
        length = rng.randrange(1, 64)
        nul = rng.randrange(0, min(length, 32))
        return Input("set-name", "set_name", (request, length, nul, "guard"), must_fail=False)
    return Input("set-name", "set_name", (request, rng.randrange(64), -1, "null"))


def _invalid_rw_flags(rng: random.Random) -> int:
    while True:
        flags = _bits(rng, 32)
        if flags & ~3 or not flags & 3:  # dma-buf.c:348-352, 405-409
            return flags


def export_sync_file(rng: random.Random, page: int) -> Input:
    fd = rng.choice([-1, 0, 1, rng.getrandbits(31), -(1 << 31)])
    if rng.random() < 0.15:  # valid flags: the input fd field is output only
        return Input("export-sync-file", "export_sync_file", (rng.randrange(1, 4), fd, "ok"),
                     must_fail=False)  # fmt: skip
    return Input("export-sync-file", "export_sync_file", (_invalid_rw_flags(rng), fd, "ok"))


def import_sync_file(rng: random.Random, page: int) -> Input:
    shape = rng.randrange(3)
    if shape == 0:
        fd = rng.choice(["syncfile", *BAD_FDS])
        return Input("import-sync-file", "import_sync_file", (_invalid_rw_flags(rng), fd, "ok"))
    if shape == 1:  # sync_file_get_fence of an fd that is no sync file: EINVAL
        flags = rng.randrange(1, 4)
        return Input("import-sync-file", "import_sync_file", (flags, rng.choice(BAD_FDS), "ok"))
    flags = rng.randrange(1, 4)
    return Input("import-sync-file", "import_sync_file", (flags, "syncfile", "ok"),
                 must_fail=False)  # fmt: skip


def _rw_shared(length: int, offset: int, category: str, must_fail: bool) -> Input:
    prot = I.PROT_READ | I.PROT_WRITE
    return Input(category, "mmap", ("rw", length, offset, prot, I.MAP_SHARED), must_fail)


def mmap_offset(rng: random.Random, page: int) -> Input:
    pages = rng.randrange(1, FIXTURE_PAGES + 1)
    length = pages * page
    shape = rng.randrange(6)
    if shape == 0:  # not a page multiple: sys_mmap -> EINVAL
        offset = rng.randrange(FIXTURE_PAGES) * page + rng.randrange(1, page)
        return _rw_shared(length, offset, "mmap-offset", True)
    if shape == 1:  # the window reaches past the end: dma_buf_mmap_internal -> EINVAL
        first = rng.randrange(FIXTURE_PAGES - pages + 1, FIXTURE_PAGES + 8)
        return _rw_shared(length, first * page, "mmap-offset", True)
    if shape == 2:  # negative: a huge pgoff (EOVERFLOW near the top, else EINVAL)
        offset = -rng.choice([1, 2, rng.randrange(1, 1 << 20), 1 << 40]) * page
        return _rw_shared(length, offset, "mmap-offset", True)
    if shape == 3:  # far past the end
        offset = rng.choice([1 << 40, 1 << 62, (1 << 63) - page, rng.getrandbits(50) * page])
        return _rw_shared(length, offset, "mmap-offset", True)
    if shape == 4:  # inside: valid
        first = rng.randrange(FIXTURE_PAGES - pages + 1)
        return _rw_shared(length, first * page, "mmap-offset", False)
    offset = rng.randrange(1, 1 << 20) * page + rng.randrange(1, page)  # far and misaligned
    return _rw_shared(length, offset, "mmap-offset", True)


def mmap_length(rng: random.Random, page: int) -> Input:
    shape = rng.randrange(5)
    size = FIXTURE_PAGES * page
    if shape == 0:
        return _rw_shared(0, 0, "mmap-length", True)  # do_mmap: !len -> EINVAL
    if shape == 1:  # inside the buffer, not always a page multiple: valid
        return _rw_shared(rng.randrange(1, size + 1), 0, "mmap-length", False)
    if shape == 2:  # longer than the buffer
        return _rw_shared(size + rng.randrange(1, 60 * page), 0, "mmap-length", True)
    if shape == 3:  # more than any task's address space: ENOMEM
        return _rw_shared(rng.randrange(1 << 57, 1 << 63), 0, "mmap-length", True)
    # PAGE_ALIGN(len) wraps to 0: ENOMEM
    return _rw_shared(U64 - rng.randrange(page - 1), 0, "mmap-length", True)


_PROTS = (
    I.PROT_READ, I.PROT_WRITE, I.PROT_READ | I.PROT_WRITE, I.PROT_READ | I.PROT_EXEC,
    I.PROT_READ | I.PROT_WRITE | I.PROT_EXEC, 0, I.PROT_EXEC,
)  # fmt: skip
# prot bits do_mmap never looks at on x86/arm64 (PROT_SEM, and one no arch uses)
_JUNK_PROT = (0x8, 0x100)


def mmap_prot_flags(kind: str) -> Builder:
    def build(rng: random.Random, page: int) -> Input:
        fixture = rng.choice(I.FIXTURES) if kind in ("heap", "vgem") else "rw"
        length = rng.randrange(1, FIXTURE_PAGES + 1) * page
        prot = rng.choice(_PROTS)
        if rng.random() < 0.2:
            prot |= rng.choice(_JUNK_PROT)
        shape = rng.randrange(8)
        if shape == 0:
            flags = I.MAP_PRIVATE | (rng.choice(I.HARMLESS_MAP_FLAGS) if rng.random() < 0.3 else 0)
        elif shape == 1:  # no mapping type, or one no kernel defines: EINVAL
            flags = rng.choice([0, *range(4, 16)])
        elif shape == 2:  # MAP_SHARED_VALIDATE with a flag dma-buf does not support
            flags = I.MAP_SHARED_VALIDATE | rng.choice([*I.UNKNOWN_MAP_BITS, I.MAP_SYNC])
        elif shape == 3:  # MAP_SHARED ignores unknown bits (mm/mmap.c: flags &= LEGACY_MAP_MASK)
            flags = I.MAP_SHARED | rng.choice(I.UNKNOWN_MAP_BITS)
        elif shape == 4:
            flags = rng.choice([I.MAP_SHARED, I.MAP_SHARED_VALIDATE]) | rng.choice(
                I.HARMLESS_MAP_FLAGS
            )
        elif shape == 5:  # a stack mapping or a huge page over a dma-buf: EINVAL
            flags = rng.choice([I.MAP_SHARED, I.MAP_PRIVATE]) | rng.choice(
                [I.MAP_GROWSDOWN, I.MAP_HUGETLB]
            )
        else:
            flags = rng.choice([I.MAP_SHARED, I.MAP_SHARED_VALIDATE])
        must_fail = (
            flags & I.MAP_TYPE not in (I.MAP_SHARED, I.MAP_SHARED_VALIDATE)
            or bool(flags & (I.MAP_GROWSDOWN | I.MAP_HUGETLB))
            or (flags & I.MAP_TYPE == I.MAP_SHARED_VALIDATE and bool(flags & ~I.LEGACY_MAP_MASK))
            or (fixture == "ro" and bool(prot & I.PROT_WRITE))
        )
        return Input("mmap-prot-flags", "mmap", (fixture, length, 0, prot, flags), must_fail)

    return build


def lseek(rng: random.Random, page: int) -> Input:
    offset = rng.choice([0, 0, 1, -1, page, -page, rng.getrandbits(63), -rng.getrandbits(63)])
    whence = rng.choice([0, 1, 2, 3, 4, 5, rng.randrange(6, 1 << 31), -rng.randrange(1, 1 << 31)])
    valid = offset == 0 and whence in (os.SEEK_SET, os.SEEK_END)
    return Input("lseek", "lseek", (offset, whence), must_fail=not valid)


def bad_pointer(kind: str) -> Builder:
    """An ioctl whose argument pointer is NULL or points at an unmapped page: EFAULT."""

    def build(rng: random.Random, page: int) -> Input:
        argp = rng.choice(["null", "guard"])
        shape = rng.randrange(4 if kind != "heap" and kind != "udmabuf" else 5)
        if shape == 0:
            return Input("bad-pointer", "sync", (rng.choice([1, 2, 3, 5, 6, 7]), argp))
        if shape == 1:
            return Input("bad-pointer", "export_sync_file", (rng.randrange(1, 4), -1, argp))
        if shape == 2:
            return Input("bad-pointer", "import_sync_file", (rng.randrange(1, 4), "syncfile", argp))
        if shape == 3:
            request = rng.choice(I.SET_NAME_REQUESTS)
            return Input("bad-pointer", "set_name", (request, 0, -1, "null"))
        if kind == "heap":
            return Input(
                "bad-pointer", "heap_alloc",
                (rng.choice(["w", "rw"]), 0, I.HEAP_ALLOC_SIZE, page, 0, DRM_RDWR, 0, argp),
            )  # fmt: skip
        if rng.random() < 0.5:
            return Input("bad-pointer", "udmabuf_create", (0, _memfd(page), 0, page, argp))
        return Input("bad-pointer", "udmabuf_list", (0, 1, [_memfd(page)], [[0, 0, page]], argp))

    return build


# -- heaps: DMA_HEAP_IOCTL_ALLOC -----------------------------------------------------------
def _alloc(category: str, length: int, fd: int = 0, fd_flags: int = os.O_RDWR | os.O_CLOEXEC,
           heap_flags: int = 0, must_fail: bool = True) -> Input:  # fmt: skip
    args = ("rw", 0, I.HEAP_ALLOC_SIZE, length, fd, fd_flags, heap_flags, "ok")
    return Input(category, "heap_alloc", args, must_fail)


_VALID_FD_FLAGS = os.O_CLOEXEC | os.O_ACCMODE  # dma-heap.h DMA_HEAP_VALID_FD_FLAGS


def heap_fd_flags(rng: random.Random, page: int) -> Input:
    while True:
        fd_flags = _bits(rng, 32) | rng.choice([0, os.O_RDWR, os.O_CLOEXEC])
        if fd_flags & ~_VALID_FD_FLAGS:  # dma-heap.c:80
            return _alloc("heap-alloc-fd-flags", _small_len(rng, page), fd_flags=fd_flags)


def heap_heap_flags(rng: random.Random, page: int) -> Input:
    heap_flags = _bits(rng, 64) or 1  # dma-heap.c:83: no heap flag is valid
    return _alloc("heap-alloc-heap-flags", _small_len(rng, page), heap_flags=heap_flags)


def heap_len(rng: random.Random, page: int) -> Input:
    # PAGE_ALIGN(len) == 0: dma-heap.c:86-88
    length = rng.choice([0, U64, U64 - rng.randrange(page - 1), U64 - page + 2])
    return _alloc("heap-alloc-len", length)


def heap_fd_in(rng: random.Random, page: int) -> Input:
    fd = _bits(rng, 32) or 1  # the fd field is output only and must be 0 (dma-heap.c:77)
    return _alloc("heap-alloc-fd-in", _small_len(rng, page), fd=fd)


def heap_request(rng: random.Random, page: int) -> Input:
    """Another struct size, direction or nr in the request number (dma-heap.c:111-154)."""
    d = rng.choice(I.DIRS)
    nr = 0 if rng.random() < 0.8 else rng.randrange(1, 256)
    size = rng.choice([0, 4, 8, 11, 12, 15, 16, 23, 25, 32, 64, 128, 129,
                       rng.randrange(I.MAX_IOC_SIZE + 1)])  # fmt: skip
    length = _small_len(rng, page) if rng.random() < 0.7 else 0
    fd = 0 if rng.random() < 0.8 else rng.randrange(1, 100)
    fd_flags = rng.choice([os.O_RDWR | os.O_CLOEXEC, os.O_RDONLY, os.O_RDWR | os.O_APPEND])
    heap_flags = 0 if rng.random() < 0.8 else 1 << rng.randrange(64)
    args = (d, nr, size, length, fd, fd_flags, heap_flags, "ok")
    must_fail = nr != 0 or I.heap_alloc_seen(args)[0] is not None
    return Input("heap-alloc-request", "heap_alloc", args, must_fail)


# -- udmabuf -----------------------------------------------------------------------------
def _memfd(page: int, pages: int = MEMFD_PAGES, seals: int = SEALED) -> list:
    return ["memfd", pages * page, seals]


def _create(category: str, rng: random.Random, memfd: list, offset: int, size: int,
            must_fail: bool, flags: int = 1) -> Input:  # fmt: skip
    """UDMABUF_CREATE or the same single item through UDMABUF_CREATE_LIST."""
    if rng.random() < 0.5:
        return Input(category, "udmabuf_create", (flags, memfd, offset, size, "ok"), must_fail)
    return Input(category, "udmabuf_list", (flags, 1, [memfd], [[0, offset, size]], "ok"),
                 must_fail)  # fmt: skip


def udmabuf_memfd(rng: random.Random, page: int) -> Input:
    bad = [rng.choice(BAD_MEMFDS), MEMFD_PAGES * page, SEALED]
    if rng.random() < 0.5:
        return _create("udmabuf-memfd", rng, bad, 0, page, True)
    n = rng.randrange(2, 5)
    memfds = [_memfd(page) for _ in range(n)]
    memfds[rng.randrange(n)] = bad  # udmabuf.c:217-223: fget, shmem_mapping -> EBADFD
    items = [[i, rng.randrange(MEMFD_PAGES) * page, page] for i in range(n)]
    return Input("udmabuf-memfd", "udmabuf_list", (0, n, memfds, items, "ok"))


def udmabuf_seals(rng: random.Random, page: int) -> Input:
    while True:
        seals = rng.randrange(0x20)
        if not seals & F_SEAL_SHRINK or seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
            break  # udmabuf.c:227-230: SEALS_WANTED / SEALS_DENIED
    if rng.random() < 0.5:
        return _create("udmabuf-seals", rng, _memfd(page, seals=seals), 0, page, True)
    n = rng.randrange(2, 5)
    memfds = [_memfd(page) for _ in range(n)]
    memfds[rng.randrange(n)][2] = seals  # the bad memfd may come after good ones
    items = [[i, 0, rng.randrange(1, MEMFD_PAGES + 1) * page] for i in range(n)]
    return Input("udmabuf-seals", "udmabuf_list", (0, n, memfds, items, "ok"))


def udmabuf_align(rng: random.Random, page: int) -> Input:
    offset = rng.randrange(MEMFD_PAGES) * page
    size = rng.randrange(1, MEMFD_PAGES - offset // page + 1) * page
    if rng.random() < 0.5:
        offset += rng.randrange(1, page)
    else:
        size += rng.choice([-1, 1]) * rng.randrange(1, page)  # udmabuf.c:196-199
    if rng.random() < 0.5:
        return _create("udmabuf-align", rng, _memfd(page), offset, size, True)
    n = rng.randrange(2, 5)
    items = [[0, 0, page] for _ in range(n)]
    items[rng.randrange(n)] = [0, offset, size]
    return Input("udmabuf-align", "udmabuf_list", (0, n, [_memfd(page)], items, "ok"))


def udmabuf_overlap(rng: random.Random, page: int) -> Input:
    """Items over the same pages of one memfd: 6.1 accepts them (no overlap check)."""
    n = rng.randrange(2, 6)
    items = []
    for _ in range(n):
        first = rng.randrange(MEMFD_PAGES)
        items.append([0, first * page, rng.randrange(1, MEMFD_PAGES - first + 1) * page])
    items[1] = list(items[0])  # at least two overlap
    return Input("udmabuf-overlap", "udmabuf_list", (0, n, [_memfd(page)], items, "ok"),
                 must_fail=False)  # fmt: skip


def udmabuf_count(rng: random.Random, page: int) -> Input:
    n = rng.randrange(1, 5)
    items = [[0, rng.randrange(MEMFD_PAGES) * page, page] for _ in range(n)]
    shape = rng.randrange(3)
    if shape == 0:
        count, must_fail = 0, True  # no pages: udmabuf.c:205
    elif shape == 1:  # more than the list holds: memdup_user runs into the unmapped page
        count, must_fail = n + rng.randrange(1, 9), True
    else:
        count, must_fail = rng.randrange(1, n + 1), False  # the first count items only
    return Input("udmabuf-count", "udmabuf_list", (0, count, [_memfd(page)], items, "ok"),
                 must_fail)  # fmt: skip


def udmabuf_limits(rng: random.Random, page: int) -> Input:
    shape = rng.randrange(4)
    if shape == 0:  # count past list_limit: udmabuf.c:341-342
        n = UDMABUF_LIST_LIMIT + rng.randrange(1, 4)
        items = [[0, 0, page]] * n
        return Input("udmabuf-limits", "udmabuf_list", (0, n, [_memfd(page)], items, "ok"))
    if shape == 1:
        count = rng.choice([U32, 1 << 31, UDMABUF_LIST_LIMIT + 1, rng.randrange(1025, 1 << 32)])
        return Input("udmabuf-limits", "udmabuf_list",
                     (0, count, [_memfd(page)], [[0, 0, page]], "ok"))  # fmt: skip
    if shape == 2:  # more pages than size_limit_mb: udmabuf.c:200-201 (checked before any page)
        size = UDMABUF_SIZE_LIMIT + rng.randrange(1, 64) * page
        return _create("udmabuf-limits", rng, _memfd(page), 0, size, True)
    # exactly list_limit items: valid
    items = [[0, rng.randrange(MEMFD_PAGES) * page, page]] * UDMABUF_LIST_LIMIT
    return Input("udmabuf-limits", "udmabuf_list",
                 (0, UDMABUF_LIST_LIMIT, [_memfd(page)], items, "ok"), must_fail=False)  # fmt: skip


def udmabuf_size(rng: random.Random, page: int) -> Input:
    shape = rng.randrange(4)
    if shape == 0:  # size 0: no pages (udmabuf.c:205)
        return _create("udmabuf-size", rng, _memfd(page), rng.randrange(MEMFD_PAGES) * page, 0,
                       True)  # fmt: skip
    if shape == 1:  # past the memfd's end: shmem_read_mapping_page -> EINVAL
        first = rng.randrange(MEMFD_PAGES + 4)
        pages = rng.randrange(max(1, MEMFD_PAGES - first + 1), MEMFD_PAGES + 6)
        return _create("udmabuf-size", rng, _memfd(page), first * page, pages * page, True)
    if shape == 2:  # an offset past what a file can hold: shmem -> EFBIG
        offset = rng.choice([1 << 63, U64 + 1 - page, rng.randrange(1 << 51, 1 << 52) * page])
        return _create("udmabuf-size", rng, _memfd(page), offset, page, True)
    offset = rng.randrange(1 << 20, 1 << 50) * page  # far past the end, not past a file's
    return _create("udmabuf-size", rng, _memfd(page), offset, page, True)


def udmabuf_request(rng: random.Random, page: int) -> Input:
    while True:
        d = rng.choice(I.DIRS)
        nr = rng.choice([0x42, 0x43]) if rng.random() < 0.8 else rng.randrange(256)
        size = rng.choice([0, 8, 16, 24, 32, rng.randrange(I.MAX_IOC_SIZE + 1)])
        if (d, nr, size) not in I.UDMABUF_REQUESTS:  # udmabuf.c:366: ENOTTY
            return Input("udmabuf-request", "udmabuf_ioctl", (d, nr, size))


def udmabuf_flags(rng: random.Random, page: int) -> Input:
    """Unknown flag bits: udmabuf_create of 6.1 only looks at UDMABUF_FLAGS_CLOEXEC."""
    flags = _bits(rng, 32) | 2
    return _create("udmabuf-flags", rng, _memfd(page), 0, page, False, flags=flags)


# -- vgem: DRM PRIME and dumb buffers -----------------------------------------------------
def prime_handle_to_fd(rng: random.Random, page: int) -> Input:
    handle = rng.choice([0, 1, 2, rng.randrange(3, 64), _bits(rng, 32)])
    flags = rng.choice([_bits(rng, 32), DRM_CLOEXEC | DRM_RDWR, DRM_CLOEXEC, 0])
    return Input("prime-handle-to-fd", "prime_handle_to_fd", (handle, flags))


def prime_fd_to_handle(rng: random.Random, page: int) -> Input:
    if rng.random() < 0.2:  # vgem's own dma-buf: the same object, a new handle
        return Input("prime-fd-to-handle", "prime_fd_to_handle", ("dmabuf",), must_fail=False)
    fd = rng.choice(["closed", "huge", "neg", "pipe", "memfd", "device", "syncfile"])
    return Input("prime-fd-to-handle", "prime_fd_to_handle", (fd,))


def gem_close(rng: random.Random, page: int) -> Input:
    handle = rng.choice([0, 1, 2, rng.randrange(3, 64), _bits(rng, 32)])
    return Input("gem-close", "gem_close", (handle, rng.choice([0, 0, _bits(rng, 32)])))


def create_dumb(rng: random.Random, page: int) -> Input:
    """drm_mode_create_dumb's checks (drm_dumb_buffers.c:68-84), and small valid buffers."""
    flags = rng.choice([0, 0, _bits(rng, 32)])  # 6.1 does not look at flags
    shape = rng.randrange(6)
    if shape == 0:  # a zero dimension
        dims = [rng.randrange(1, 64), rng.randrange(1, 64), rng.choice([8, 16, 32])]
        dims[rng.randrange(3)] = 0
        return Input("create-dumb", "create_dumb", (*dims, flags))
    if shape == 1:  # bpp > U32_MAX - 8
        return Input("create-dumb", "create_dumb",
                     (rng.randrange(1, 8), rng.randrange(1, 8), U32 - rng.randrange(8), flags))
    if shape == 2:  # cpp * width overflows u32
        bpp = rng.choice([16, 24, 32, 64])
        width = U32 // -(-bpp // 8) + rng.randrange(1, 1000)
        return Input("create-dumb", "create_dumb", (1, min(width, U32), bpp, flags))
    if shape == 3:  # height * stride overflows u32
        width = rng.randrange(1, 4096)
        height = U32 // (width * 4) + rng.randrange(1, 1000)
        return Input("create-dumb", "create_dumb", (min(height, U32), width, 32, flags))
    if shape == 4:  # the size page-aligns to 0 in u32 (PAGE_ALIGN(size) == 0)
        return Input("create-dumb", "create_dumb", (U32 - rng.randrange(page - 1), 1, 8, flags))
    dims = (rng.randrange(1, 17), rng.randrange(1, 257), rng.choice([8, 16, 24, 32]))
    return Input("create-dumb", "create_dumb", (*dims, flags), must_fail=False)


# -- per kind -----------------------------------------------------------------------------
def categories(kind: str) -> dict[str, Builder]:
    """The categories that apply to an exporter of ``kind`` (heap, udmabuf, vgem)."""
    common: dict[str, Builder] = {
        "sync-flags": sync_flags,
        "dmabuf-request": dmabuf_request,
        "set-name": set_name,
        "export-sync-file": export_sync_file,
        "import-sync-file": import_sync_file,
        "mmap-offset": mmap_offset,
        "mmap-length": mmap_length,
        "mmap-prot-flags": mmap_prot_flags(kind),
        "lseek": lseek,
        "bad-pointer": bad_pointer(kind),
    }
    specific: dict[str, dict[str, Builder]] = {
        "heap": {
            "heap-alloc-fd-flags": heap_fd_flags,
            "heap-alloc-heap-flags": heap_heap_flags,
            "heap-alloc-len": heap_len,
            "heap-alloc-fd-in": heap_fd_in,
            "heap-alloc-request": heap_request,
        },
        "udmabuf": {
            "udmabuf-memfd": udmabuf_memfd,
            "udmabuf-seals": udmabuf_seals,
            "udmabuf-align": udmabuf_align,
            "udmabuf-overlap": udmabuf_overlap,
            "udmabuf-count": udmabuf_count,
            "udmabuf-limits": udmabuf_limits,
            "udmabuf-size": udmabuf_size,
            "udmabuf-request": udmabuf_request,
            "udmabuf-flags": udmabuf_flags,
        },
        "vgem": {
            "prime-handle-to-fd": prime_handle_to_fd,
            "prime-fd-to-handle": prime_fd_to_handle,
            "gem-close": gem_close,
            "create-dumb": create_dumb,
        },
    }
    if kind not in specific:
        raise ValueError(f"no bad-input categories for exporter kind {kind!r}")
    return {**specific[kind], **common}


def generate(kind: str, n: int, seed: int, page: int = 4096) -> list[Input]:
    """``n`` inputs for an exporter of ``kind``; categories take turns."""
    rng = random.Random(f"bad-input:{kind}:{seed}")
    builders = list(categories(kind).items())
    out = []
    for i in range(n):
        name, build = builders[i % len(builders)]
        inp = build(rng, page)
        if inp.category != name and name != "bad-pointer":
            raise AssertionError(f"builder {name} made a {inp.category} input")
        out.append(inp)
    return out
