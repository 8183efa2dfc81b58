"""fork on the model: a child writing through an inherited mapping or a mapping of its own."""

from __future__ import annotations

import errno

from conformance.errors import kernel_error
from conformance.targets.model_parts.mappings import UserMappings


class ForkEmulation(UserMappings):
    """What a forked child does to a buffer, as seen by the parent."""

    def fork_write(self, mapping: int, offset: int, data: bytes) -> None:
        m = self._get(self._mappings, mapping, "mapping")
        if not m.buffer.profile.mapping_inherited:
            raise kernel_error(errno.EFAULT, "fork_write", "the child was killed by SIGSEGV")
        if m.shared:
            self.cpu_write(mapping, offset, data)
        else:  # the child writes its own copy-on-write copy; the parent sees nothing
            list(self._cpu_span(m, offset, len(data), "fork_write"))

    def fork_mmap_write(self, buf: int, offset: int, data: bytes) -> None:
        self._fd(buf, "fork_mmap_write")
        mapping = self.mmap(buf)
        try:
            self.cpu_write(mapping, offset, data)
        finally:
            self.munmap(mapping)
