"""udmabuf_create on the model: memfds, their seals and udmabuf.c's validation of the items.

Limits and seal rules are udmabuf.c's (6.1): the list_limit and
size_limit_mb module parameters' defaults, F_SEAL_SHRINK wanted and
F_SEAL_WRITE denied; a profile switch turns each check off for a faulty
exporter.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from conformance.errors import NotAvailableOnTarget, SetupError, kernel_error
from conformance.model.memory import LINEAR, PAGE_SIZE
from conformance.model.profiles import ExporterProfile
from conformance.targets.model_parts.fds import FdTable
from conformance.uapi.memfd import F_SEAL_FUTURE_WRITE, F_SEAL_SHRINK, F_SEAL_WRITE

MiB = 1 << 20
UDMABUF_LIST_LIMIT = 1024
UDMABUF_PAGE_LIMIT = 64 * MiB // PAGE_SIZE
_MAX_LFS_PAGES = ((1 << 63) - 1) // PAGE_SIZE  # MAX_LFS_FILESIZE >> PAGE_SHIFT (64-bit)


@dataclass
class Memfd:
    """A shmem memfd: its size, seals and page frames (zeroed, as shmem hands them out)."""

    size: int
    seals: int
    pages: list[int]
    # issue 11 (bad input at volume): what the fd is when it is no memfd ("closed",
    # "pipe", "dmabuf", ...); udmabuf_create refuses those with EBADFD
    kind: str = "shmem"


class UdmabufEmulation(FdTable):
    """UDMABUF_CREATE and UDMABUF_CREATE_LIST over model memfds."""

    _memfds: dict[int, list[Memfd]]

    def _new_memfd(self, size: int, seals: int) -> Memfd:
        if size < 0:
            raise SetupError(f"udmabuf_create: memfd size {size} is negative")
        pages = self.memory.alloc(-(-size // PAGE_SIZE))
        if pages is None:
            raise kernel_error(errno.ENOMEM, "ftruncate", size)
        for pfn in pages:
            self.cache.write(pfn, LINEAR, 0, bytes(PAGE_SIZE))
        return Memfd(size, seals, pages)

    def udmabuf_create(
        self,
        exporter: str,
        memfds: list[tuple[int, int]],
        items: list[tuple[int, int, int]],
        *,
        use_list: bool = True,
        count: int | None = None,
    ) -> int:
        """udmabuf_create() of 6.1: every item checked for alignment first, then each memfd."""
        profile = self._profile_of_kind(exporter, "udmabuf", "udmabuf_create")
        if not use_list and (len(items) != 1 or count is not None):
            raise SetupError("UDMABUF_CREATE takes exactly one item and no count")
        files = [self._new_memfd(size, seals) for size, seals in memfds]
        backing = [pfn for f in files for pfn in f.pages]
        try:
            pages = self._udmabuf_pages(profile, files, items, use_list, count, backing)
        except BaseException:
            self.memory.free(backing)
            raise
        b = self.exporter.wrap(profile, pages, backing)
        self._buffers[b.ino] = b
        self._live.add(b.ino)
        h = self._open(b, os.O_RDWR | os.O_CLOEXEC, "UDMABUF_CREATE")
        self._memfds[h] = files
        return h

    def _udmabuf_pages(
        self,
        profile: ExporterProfile,
        files: list[Memfd],
        items: list[tuple[int, int, int]],
        use_list: bool,
        count: int | None,
        backing: list[int],
    ) -> list[int]:
        op = "UDMABUF_CREATE_LIST" if use_list else "UDMABUF_CREATE"
        n = len(items) if count is None else count
        arg = {"count": n, "items": [tuple(i) for i in items]}
        if use_list and n > self._udmabuf_list_limit(profile) and profile.udmabuf_list_limit:
            raise kernel_error(errno.EINVAL, op, arg)
        if n > len(items):  # memdup_user reads past the items the caller wrote
            raise kernel_error(errno.EFAULT, op, arg)
        ranges = []
        for index, offset, size in items[:n]:
            if not 0 <= index < len(files):
                raise SetupError(f"{op}: memfd index {index}, but {len(files)} memfd(s) made")
            aligned = offset % PAGE_SIZE == 0 and size % PAGE_SIZE == 0
            if not aligned and profile.udmabuf_align_check:
                raise kernel_error(errno.EINVAL, op, arg)
            first = offset // PAGE_SIZE if profile.udmabuf_item_offset else 0
            ranges.append((files[index], first, -(-(offset % PAGE_SIZE + size) // PAGE_SIZE)))
        total = sum(r[2] for r in ranges)
        if self._udmabuf_over_size_limit(profile, [r[2] for r in ranges]) or (
            total == 0 and profile.udmabuf_rejects_empty
        ):
            raise kernel_error(errno.EINVAL, op, arg)
        pages: list[int] = []
        for f, first, npages in ranges:
            # issue 11 (bad input at volume): fget() finds no file, or not a shmem or
            # hugetlbfs one: EBADFD (udmabuf.c:216-223 of 6.1)
            if f.kind != "shmem":
                raise kernel_error(errno.EBADFD, op, arg)
            sealed = f.seals & F_SEAL_SHRINK and not f.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)
            if not sealed and profile.udmabuf_seal_check:
                raise kernel_error(errno.EINVAL, op, arg)
            for idx in range(first, first + npages):
                if idx < len(f.pages) and profile.udmabuf_pins_pages:
                    pages.append(f.pages[idx])
                    continue
                if idx < len(f.pages):  # a snapshot: a page of its own with the content
                    copy = self.memory.alloc(1)
                    if copy is None:
                        raise kernel_error(errno.ENOMEM, op, arg)
                    content = self.cache.read(f.pages[idx], LINEAR, 0, PAGE_SIZE)
                    self.cache.write(copy[0], LINEAR, 0, content)
                    backing.extend(copy)
                    pages.extend(copy)
                    continue
                # issue 11 (bad input at volume): shmem_get_folio_gfp refuses an index
                # past MAX_LFS_FILESIZE with EFBIG before the i_size check (mm/shmem.c:1879-1880)
                if idx > _MAX_LFS_PAGES:
                    raise kernel_error(errno.EFBIG, op, arg)
                # shmem_read_mapping_page past i_size: EINVAL
                if profile.udmabuf_memfd_bounds:
                    raise kernel_error(errno.EINVAL, op, arg)
                fresh = self.memory.alloc(1)
                if fresh is None:
                    raise kernel_error(errno.ENOMEM, op, arg)
                backing.extend(fresh)
                pages.extend(fresh)
        return pages

    def memfd_write(self, buf: int, memfd: int, offset: int, data: bytes) -> None:
        self._fd(buf, "pwrite")
        files = self._memfds.get(buf, [])
        if not 0 <= memfd < len(files):
            raise SetupError(f"memfd_write: memfd index {memfd}, but the buffer has {len(files)}")
        f, data = files[memfd], bytes(data)
        if offset < 0 or offset + len(data) > f.size:
            raise SetupError(f"memfd_write: {offset}+{len(data)} past the {f.size} B memfd")
        pos = 0
        while pos < len(data):  # write(2) on shmem: through the kernel's cached linear map
            idx, off = divmod(offset + pos, PAGE_SIZE)
            n = min(PAGE_SIZE - off, len(data) - pos)
            self.cache.write(f.pages[idx], LINEAR, off, data[pos : pos + n])
            pos += n

    # -- issue 11: udmabuf's module parameters (list_limit, size_limit_mb) ------------------
    # 6.1 udmabuf.c:16-22: two int parameters, 0644, that udmabuf reads at every create.
    # The model keeps them per target (a fresh model starts with udmabuf.c's defaults);
    # ``set_module_param`` on a checked target changes the shadow's with the kernel's.

    @property
    def _module_params(self) -> dict[tuple[str, str], int]:
        params = self.__dict__.get("_udmabuf_params")
        if params is None:
            params = self.__dict__["_udmabuf_params"] = {
                ("udmabuf", "list_limit"): UDMABUF_LIST_LIMIT,
                ("udmabuf", "size_limit_mb"): UDMABUF_PAGE_LIMIT * PAGE_SIZE // MiB,
            }
        return params

    def _module_param_key(self, module: str, name: str) -> tuple[str, str]:
        key = (module, name)
        if key not in self._module_params:
            known = ", ".join(f"{m}.{n}" for m, n in self._module_params)
            raise NotAvailableOnTarget(
                f"the model has no module parameter {module}.{name} (it models: {known})"
            )
        return key

    def module_param(self, module: str, name: str) -> str:
        return str(self._module_params[self._module_param_key(module, name)])

    def set_module_param(self, module: str, name: str, value: str) -> str:
        key = self._module_param_key(module, name)
        old = str(self._module_params[key])
        op = f"write /sys/module/{module}/parameters/{name}"
        number = _kstrtoint(str(value))
        if number is None:
            raise kernel_error(errno.EINVAL, op, value)
        if not -(1 << 31) <= number < 1 << 31:
            raise kernel_error(errno.ERANGE, op, value)
        self._module_params[key] = number
        return old

    def _udmabuf_list_limit(self, profile: ExporterProfile) -> int:
        """``head.count > list_limit`` (udmabuf.c:341): the int converts to u32, so a
        negative limit is a huge one."""
        if not profile.udmabuf_list_limit_param:
            return UDMABUF_LIST_LIMIT  # the faulty exporter's compiled-in constant
        return self._module_params[("udmabuf", "list_limit")] & 0xFFFFFFFF

    def _udmabuf_over_size_limit(self, profile: ExporterProfile, item_pages: list[int]) -> bool:
        """udmabuf.c:194-202: the running page total against size_limit_mb's pages (a
        negative parameter, cast to u64, is no limit); per item for the faulty profile."""
        mb = self._module_params[("udmabuf", "size_limit_mb")]
        if mb < 0:
            return False
        pglimit = mb * MiB // PAGE_SIZE
        if profile.udmabuf_size_limit_total:
            return sum(item_pages) > pglimit
        return any(n > pglimit for n in item_pages)


def _kstrtoint(text: str) -> int | None:
    """param_set_int's kstrtoint(val, 0, ...): decimal, 0x hex or 0 octal, one trailing
    newline allowed; None where the kernel answers EINVAL."""
    if text.endswith("\n"):
        text = text[:-1]
    sign = -1 if text.startswith("-") else 1
    digits = text[1:] if text[:1] in "+-" and text else text
    for prefix, base, alphabet in (("0x", 16, "0123456789abcdef"), ("0", 8, "01234567")):
        if digits.lower().startswith(prefix) and (len(digits) > len(prefix) or base == 8):
            rest = digits[len(prefix) :].lower() or "0"
            return sign * int(rest, base) if all(c in alphabet for c in rest) else None
    return sign * int(digits) if digits.isascii() and digits.isdigit() else None

