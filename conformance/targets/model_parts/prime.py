"""DRM PRIME on the model: a vgem-like device importing dma-bufs (drm_prime.c of 6.1)."""

from __future__ import annotations

import os

from conformance.model.memory import LINEAR, PAGE_SIZE
from conformance.targets.model_parts.fds import FdTable


class PrimeEmulation(FdTable):
    """PRIME FD_TO_HANDLE, HANDLE_TO_FD and GEM_CLOSE in one step."""

    def prime_import(self, exporter: str, buf: int) -> int:
        """FD_TO_HANDLE, HANDLE_TO_FD, GEM_CLOSE (drm_prime.c of 6.1)."""
        profile = self._profile_of_kind(exporter, "vgem", "prime_import")
        b = self._fd(buf, "DRM_IOCTL_PRIME_FD_TO_HANDLE").buffer
        own = b.profile is profile
        if not profile.prime_reimport_same:
            # a new object with a copy of the pages, exported as a new dma-buf
            copy = self.exporter.allocate(profile, b.size)
            for src, dst in zip(b.pages, copy.pages):
                self.cache.write(dst, LINEAR, 0, self.cache.read(src, LINEAR, 0, PAGE_SIZE))
            self._buffers[copy.ino] = copy
            self._live.add(copy.ino)
            return self._open(copy, os.O_RDWR | os.O_CLOEXEC, "DRM_IOCTL_PRIME_HANDLE_TO_FD")
        # the object's dma-buf (own) or the imported dma-buf itself (foreign): the same buffer
        h = self._open(b, os.O_RDWR | os.O_CLOEXEC, "DRM_IOCTL_PRIME_HANDLE_TO_FD")
        if own and not profile.gem_close_keeps_pages and b.backing != []:
            # GEM_CLOSE of the last handle frees the pages under the live dma-buf
            self.memory.free(b.pages)
            b.backing = []
        return h
