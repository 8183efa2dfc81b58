"""The model's answers to a batch of bad inputs (``Target.bad_input_batch``).

Each input (``conformance.bad_input.inputs``) goes through the model's own
operations where the Target interface can express it (sync, set_name, the
sync-file ioctls, lseek, allocate, udmabuf's item checks), so a faulty
profile answers as it behaves everywhere else.  What the interface cannot
express is answered here from the 6.1 kernel code it stands for, cited by
file:line of linux-source-6.1 (6.1.192): raw request numbers, user pointers,
fds that are not what the call wants, the mm checks before an exporter's
mmap, and DRM PRIME and dumb-buffer arguments.

The batch works on one buffer of the exporter (and a read-only one where the
exporter can make it), opened for the batch and closed after, as the guest
does; every object an accepted input makes is closed at once.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Callable

from conformance.bad_input import inputs as I  # noqa: N812 - a namespace of constants
from conformance.errors import KernelError, SetupError, kernel_error
from conformance.model.memory import PAGE_SIZE
from conformance.model.profiles import PROFILES
from conformance.records import SyncFlag
from conformance.targets.model_parts.udmabuf import F_SEAL_SHRINK, Memfd

FIXTURE_PAGES = 4  # as the guest's runner (conformance/bad_input/local.py)
_U32, _U64 = (1 << 32) - 1, (1 << 64) - 1
# x86_64 TASK_SIZE_MAX with 4-level page tables; generated lengths are either
# small or above 2**57, so a 5-level or arm64 limit answers the same
_TASK_SIZE = (1 << 47) - PAGE_SIZE
_DRM_PRIME_FLAGS = os.O_CLOEXEC | os.O_RDWR  # DRM_CLOEXEC | DRM_RDWR
_NOT_OPEN = ("closed", "huge", "neg")  # fget() finds no file


class _Batch:
    """The model target, the exporter's profile and the batch's buffers."""

    def __init__(self, model: Any, exporter: str) -> None:
        profile = PROFILES.get(exporter)
        if profile is None:
            raise SetupError(f"bad_input_batch: the model has no exporter {exporter!r}")
        self.model = model
        self.exporter = exporter
        self.profile = profile
        self._fixtures: dict[str, int] = {}

    def fixture(self, which: str = "rw") -> int:
        if which not in self._fixtures:
            size = FIXTURE_PAGES * PAGE_SIZE
            if self.profile.kind == "udmabuf":
                if which != "rw":
                    raise SetupError("a udmabuf fd is always O_RDWR: no read-only fixture")
                buf = self.model.udmabuf_create(
                    self.exporter, [(size, F_SEAL_SHRINK)], [(0, 0, size)], use_list=False
                )
            else:
                mode = os.O_RDWR if which == "rw" else os.O_RDONLY
                buf = self.model.allocate(self.exporter, size, fd_flags=mode | os.O_CLOEXEC)
            self._fixtures[which] = buf
        return self._fixtures[which]

    def close(self) -> None:
        for buf in self._fixtures.values():
            self.model.close(buf)
        self._fixtures.clear()


def run_batch(model: Any, exporter: str, encoded: list[list[Any]]) -> list[int]:
    """One errno per input (0: accepted), as the 6.1 kernel the model stands for answers."""
    batch = _Batch(model, exporter)
    out: list[int] = []
    try:
        for raw in encoded:
            op, args = I.decode(raw)
            try:
                _OPS[op](batch, *args)
            except KernelError as e:
                out.append(e.errno)
            else:
                out.append(0)
    finally:
        batch.close()
    return out


def _efault(op: str, argp: str) -> None:
    if argp != "ok":  # copy_from_user of a NULL or unmapped pointer
        raise kernel_error(errno.EFAULT, op, argp)


# -- the dma-buf file -------------------------------------------------------------------
def _sync(b: _Batch, flags: int, argp: str) -> None:
    buf = b.fixture()
    _efault("DMA_BUF_IOCTL_SYNC", argp)  # dma-buf.c:452-453
    b.model.sync(buf, flags)


def _dmabuf_ioctl(b: _Batch, d: str, nr: int, size: int) -> None:
    buf = b.fixture()
    if b.profile.ioctl_size_checked:
        # dma_buf_ioctl compares the whole request number: dma-buf.c:490-491
        raise kernel_error(errno.ENOTTY, "ioctl", (d, nr, size))
    # a dma-buf core that dispatches on _IOC_NR alone, the argument read as
    # the struct of that nr: the runner passes zeroed bytes
    if nr == 0:
        b.model.sync(buf, 0)
    elif nr == 1:
        b.model.set_name(buf, b"", "B")
    elif nr == 2:
        b.model.export_sync_file(buf, 0)
    elif nr == 3:
        b.model.import_sync_file(buf, -1, 0)
    else:
        raise kernel_error(errno.ENOTTY, "ioctl", (d, nr, size))


def _set_name(b: _Batch, request: str, length: int, nul_at: int, where: str) -> None:
    buf = b.fixture()
    op = "DMA_BUF_SET_NAME"
    name = I.name_bytes(length, nul_at)
    if where == "null":
        # strndup_user: strnlen_user faults -> 0 -> EFAULT (mm/util.c:225-228)
        raise kernel_error(errno.EFAULT, op, "NULL")
    if where == "guard":
        # the bytes end at an unmapped page: strnlen_user(s, 32) reads up to 32
        # bytes; a NUL in them ends the name, 32 without one is "too long"
        # (EINVAL), fewer before the unmapped page is a fault (mm/util.c:225-231)
        if 0 <= nul_at < min(length, 32):
            name = name[:nul_at]
        elif length < 32:
            raise kernel_error(errno.EFAULT, op, f"{length} bytes before an unmapped page")
    b.model.set_name(buf, name, request)


def _export_sync_file(b: _Batch, flags: int, fd: int, argp: str) -> None:
    buf = b.fixture()
    op = "DMA_BUF_IOCTL_EXPORT_SYNC_FILE"
    b.model._sync_file_ioctl(buf, op)  # before 6.0: no such ioctl (ENOTTY)
    _efault(op, argp)  # dma-buf.c:345-346
    sync_file = b.model.export_sync_file(buf, flags)  # the input fd field is output only
    b.model.close_sync_file(sync_file)


def _import_sync_file(b: _Batch, flags: int, fd: str, argp: str) -> None:
    buf = b.fixture()
    op = "DMA_BUF_IOCTL_IMPORT_SYNC_FILE"
    b.model._sync_file_ioctl(buf, op)
    _efault(op, argp)  # dma-buf.c:402-403
    if fd != "syncfile":
        # any other fd: sync_file_get_fence finds no fence, EINVAL (dma-buf.c:411-413),
        # after the flags (dma-buf.c:405-409), as the model checks them
        b.model.import_sync_file(buf, -1, flags)
        return
    sync_file = b.model.export_sync_file(buf, int(SyncFlag.RW))
    try:
        b.model.import_sync_file(buf, sync_file, flags)
    finally:
        b.model.close_sync_file(sync_file)


def _lseek(b: _Batch, offset: int, whence: int) -> None:
    # ksys_lseek refuses whence > SEEK_MAX with EINVAL too (fs/read_write.c)
    b.model.lseek(b.fixture(), offset, whence)


def _mmap(b: _Batch, fixture: str, length: int, offset: int, prot: int, flags: int) -> None:
    """mmap(2) of a dma-buf fd: the syscall, do_mmap, then dma_buf_mmap_internal."""
    fd = b.model._fd(b.fixture(fixture), "mmap")
    buffer = fd.buffer
    arg = {"length": length, "offset": offset, "prot": prot, "flags": flags}

    def refuse(err: int) -> None:
        raise kernel_error(err, "mmap", arg)

    if offset & (PAGE_SIZE - 1):
        refuse(errno.EINVAL)  # arch/x86/kernel/sys_x86_64.c:90 (glibc checks it first)
    if flags & I.MAP_HUGETLB:
        refuse(errno.EINVAL)  # ksys_mmap_pgoff, a file not on hugetlbfs: mm/mmap.c:1466-1468
    if length == 0:
        refuse(errno.EINVAL)  # do_mmap: mm/mmap.c:1281-1282
    aligned = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & _U64
    if aligned == 0:
        refuse(errno.ENOMEM)  # PAGE_ALIGN wraps: mm/mmap.c:1302-1304
    pgoff = (offset & _U64) >> 12
    pages = aligned >> 12
    if (pgoff + pages) & _U64 < pgoff:
        refuse(errno.EOVERFLOW)  # mm/mmap.c:1307-1308
    if aligned > _TASK_SIZE:
        refuse(errno.ENOMEM)  # get_unmapped_area: mm/mmap.c:1841-1842
    # file_mmap_ok: a dma-buf inode is no regular file, its limit is ULONG_MAX
    # (mm/mmap.c:1234-1264, checked at 1351-1352)
    if pgoff > (_U64 - aligned) >> 12:
        refuse(errno.EOVERFLOW)
    acc = fd.flags & os.O_ACCMODE
    can_read, can_write = acc in (os.O_RDONLY, os.O_RDWR), acc in (os.O_WRONLY, os.O_RDWR)
    kind = flags & I.MAP_TYPE
    if kind not in (I.MAP_SHARED, I.MAP_SHARED_VALIDATE, I.MAP_PRIVATE):
        refuse(errno.EINVAL)  # mm/mmap.c:1405-1406
    if kind == I.MAP_SHARED:
        flags &= I.LEGACY_MAP_MASK  # unknown flags ignored: mm/mmap.c:1357-1365
    if kind in (I.MAP_SHARED, I.MAP_SHARED_VALIDATE):
        if flags & ~I.LEGACY_MAP_MASK:
            refuse(errno.EOPNOTSUPP)  # mm/mmap.c:1368-1369
        if prot & I.PROT_WRITE and not can_write:
            refuse(errno.EACCES)  # mm/mmap.c:1370-1372
    if not can_read:
        refuse(errno.EACCES)  # mm/mmap.c:1391-1392
    if flags & I.MAP_GROWSDOWN:
        refuse(errno.EINVAL)  # VM_GROWSDOWN on a file: mm/mmap.c:1401-1402
    # prot bits beyond READ|WRITE|EXEC: calc_vm_prot_bits ignores them; the
    # dma-buf mount is not noexec (init_pseudo sets no SB_I_NOEXEC), so EXEC is fine
    profile = buffer.profile
    if not profile.has_mmap:
        refuse(errno.EINVAL)  # dma-buf.c:141-142
    if profile.check_mmap_bounds and pgoff + pages > buffer.size // PAGE_SIZE:
        refuse(errno.EINVAL)  # dma-buf.c:145-147
    if kind == I.MAP_PRIVATE and not profile.accept_private:
        refuse(errno.EINVAL)  # the exporters' mmap want VM_SHARED (see profiles.py)


# -- heaps --------------------------------------------------------------------------------
def _heap_alloc(b: _Batch, *args: Any) -> None:
    d, nr, size, _len, _fd, _fd_flags, _heap_flags, argp = args
    op = "DMA_HEAP_IOCTL_ALLOC"
    if nr >= 1:
        raise kernel_error(errno.EINVAL, op, {"nr": nr})  # dma-heap.c:123-124
    if I.has_write(d) and size and argp != "ok":
        raise kernel_error(errno.EFAULT, op, argp)  # dma-heap.c:147-149
    _why, (length, fd, fd_flags, heap_flags) = I.heap_alloc_seen(args)
    if fd:
        raise kernel_error(errno.EINVAL, op, {"fd": fd})  # dma-heap.c:77-78
    # flags and len as the model's allocate checks them (dma-heap.c:80-88)
    buf = b.model.allocate(b.exporter, length, fd_flags=fd_flags, heap_flags=heap_flags)
    b.model.close(buf)


# -- udmabuf --------------------------------------------------------------------------------
def _udmabuf_ioctl(b: _Batch, d: str, nr: int, size: int) -> None:
    raise kernel_error(errno.ENOTTY, "ioctl", (d, nr, size))  # udmabuf.c:365-367


def _memfd_of(b: _Batch, spec: list) -> Memfd:
    kind, size, seals = spec
    if kind == "memfd":
        return b.model._new_memfd(size, seals)
    # not a shmem file (or no file at all): udmabuf_create answers EBADFD
    return Memfd(size, seals, [], kind=kind)


def _udmabuf(b: _Batch, op: str, memfds: list, items: list, use_list: bool, count: Any) -> None:
    model = b.model
    profile = model._profile_of_kind(b.exporter, "udmabuf", op)
    files = [_memfd_of(b, m) for m in memfds]
    backing = [pfn for f in files for pfn in f.pages]
    try:
        pages = model._udmabuf_pages(
            profile, files, [tuple(i) for i in items], use_list, count, backing
        )
    except BaseException:
        model.memory.free(backing)
        raise
    # udmabuf_create of 6.1 reads only UDMABUF_FLAGS_CLOEXEC of the flags (udmabuf.c:289-291)
    buffer = model.exporter.wrap(profile, pages, backing)
    model._buffers[buffer.ino] = buffer
    model._live.add(buffer.ino)
    model.close(model._open(buffer, os.O_RDWR | os.O_CLOEXEC, op))


def _udmabuf_create(b: _Batch, flags: int, memfd: list, offset: int, size: int, argp: str) -> None:
    _efault("UDMABUF_CREATE", argp)  # udmabuf.c:319-321
    _udmabuf(b, "UDMABUF_CREATE", [memfd], [[0, offset, size]], False, None)


def _udmabuf_list(b: _Batch, flags: int, count: int, memfds: list, items: list, argp: str) -> None:
    _efault("UDMABUF_CREATE_LIST", argp)  # udmabuf.c:339-340
    _udmabuf(b, "UDMABUF_CREATE_LIST", memfds, items, True, count)


# -- vgem: DRM PRIME and dumb buffers ---------------------------------------------------------
def _prime_handle_to_fd(b: _Batch, handle: int, flags: int) -> None:
    op = "DRM_IOCTL_PRIME_HANDLE_TO_FD"
    if flags & ~_DRM_PRIME_FLAGS:
        raise kernel_error(errno.EINVAL, op, {"flags": flags})  # drm_prime.c:525-526
    # the batch's DRM file holds no GEM handle: drm_prime.c:439-442
    raise kernel_error(errno.ENOENT, op, {"handle": handle})


def _prime_fd_to_handle(b: _Batch, fd: str) -> None:
    op = "DRM_IOCTL_PRIME_FD_TO_HANDLE"
    if fd in _NOT_OPEN:
        raise kernel_error(errno.EBADF, op, fd)  # dma_buf_get: dma-buf.c:745-748
    if fd != "dmabuf":
        raise kernel_error(errno.EINVAL, op, fd)  # not a dma-buf: dma-buf.c:750-752
    # vgem's own dma-buf: the same GEM object under a new handle (drm_prime.c:300-330),
    # which the runner closes
    b.model._fd(b.fixture(), op)


def _gem_close(b: _Batch, handle: int, pad: int) -> None:
    # no such handle in the batch's file: drm_gem_handle_delete, drm_gem.c:270-273
    raise kernel_error(errno.EINVAL, "DRM_IOCTL_GEM_CLOSE", {"handle": handle})


def _create_dumb(b: _Batch, height: int, width: int, bpp: int, flags: int) -> None:
    """drm_mode_create_dumb's argument checks (drm_dumb_buffers.c:68-84); flags unread."""
    op = "DRM_IOCTL_MODE_CREATE_DUMB"
    arg = {"height": height, "width": width, "bpp": bpp}
    if not width or not height or not bpp or bpp > _U32 - 8:
        raise kernel_error(errno.EINVAL, op, arg)
    cpp = -(-bpp // 8)
    if cpp > _U32 // width:
        raise kernel_error(errno.EINVAL, op, arg)
    stride = cpp * width
    if height > _U32 // stride:
        raise kernel_error(errno.EINVAL, op, arg)
    size = height * stride
    if (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & _U32 == 0:
        raise kernel_error(errno.EINVAL, op, arg)


_OPS: dict[str, Callable[..., None]] = {
    "sync": _sync,
    "dmabuf_ioctl": _dmabuf_ioctl,
    "set_name": _set_name,
    "export_sync_file": _export_sync_file,
    "import_sync_file": _import_sync_file,
    "mmap": _mmap,
    "lseek": _lseek,
    "heap_alloc": _heap_alloc,
    "udmabuf_ioctl": _udmabuf_ioctl,
    "udmabuf_create": _udmabuf_create,
    "udmabuf_list": _udmabuf_list,
    "prime_handle_to_fd": _prime_handle_to_fd,
    "prime_fd_to_handle": _prime_fd_to_handle,
    "gem_close": _gem_close,
    "create_dumb": _create_dumb,
}
