"""Every request number, by name, so logs and errors print names, not numbers."""

from __future__ import annotations

import enum

from conformance.uapi import dma_buf, dma_heap, drm, ion, udmabuf


class Request(enum.IntEnum):
    DMA_HEAP_IOCTL_ALLOC = dma_heap.DMA_HEAP_IOCTL_ALLOC
    DMA_BUF_IOCTL_SYNC = dma_buf.DMA_BUF_IOCTL_SYNC
    # _A and _B come first so that the legacy number, which equals one of them
    # (pointer size), becomes an alias and prints as the explicit encoding.
    DMA_BUF_SET_NAME_A = dma_buf.DMA_BUF_SET_NAME_A
    DMA_BUF_SET_NAME_B = dma_buf.DMA_BUF_SET_NAME_B
    DMA_BUF_SET_NAME = dma_buf.DMA_BUF_SET_NAME
    DMA_BUF_IOCTL_EXPORT_SYNC_FILE = dma_buf.DMA_BUF_IOCTL_EXPORT_SYNC_FILE
    DMA_BUF_IOCTL_IMPORT_SYNC_FILE = dma_buf.DMA_BUF_IOCTL_IMPORT_SYNC_FILE
    UDMABUF_CREATE = udmabuf.UDMABUF_CREATE
    UDMABUF_CREATE_LIST = udmabuf.UDMABUF_CREATE_LIST
    DRM_IOCTL_VERSION = drm.DRM_IOCTL_VERSION
    DRM_IOCTL_GEM_CLOSE = drm.DRM_IOCTL_GEM_CLOSE
    DRM_IOCTL_PRIME_HANDLE_TO_FD = drm.DRM_IOCTL_PRIME_HANDLE_TO_FD
    DRM_IOCTL_PRIME_FD_TO_HANDLE = drm.DRM_IOCTL_PRIME_FD_TO_HANDLE
    DRM_IOCTL_MODE_CREATE_DUMB = drm.DRM_IOCTL_MODE_CREATE_DUMB
    DRM_IOCTL_MODE_MAP_DUMB = drm.DRM_IOCTL_MODE_MAP_DUMB
    DRM_IOCTL_MODE_DESTROY_DUMB = drm.DRM_IOCTL_MODE_DESTROY_DUMB
    ION_IOC_ALLOC = ion.ION_IOC_ALLOC
    ION_IOC_HEAP_QUERY = ion.ION_IOC_HEAP_QUERY
