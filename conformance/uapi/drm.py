"""The parts of include/uapi/drm/drm.h and drm_mode.h needed for vgem + PRIME."""

from __future__ import annotations

import ctypes
import os

from conformance.uapi.ioc import IOW, IOWR

DRM_IOCTL_BASE = "d"
DRM_CLOEXEC = os.O_CLOEXEC
DRM_RDWR = os.O_RDWR


class drm_version(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("version_major", ctypes.c_int),
        ("version_minor", ctypes.c_int),
        ("version_patchlevel", ctypes.c_int),
        ("name_len", ctypes.c_size_t),  # __kernel_size_t
        ("name", ctypes.c_void_p),
        ("date_len", ctypes.c_size_t),
        ("date", ctypes.c_void_p),
        ("desc_len", ctypes.c_size_t),
        ("desc", ctypes.c_void_p),
    ]


class drm_gem_close(ctypes.Structure):  # noqa: N801
    _fields_ = [("handle", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class drm_prime_handle(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("handle", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),  # DRM_CLOEXEC | DRM_RDWR
        ("fd", ctypes.c_int32),
    ]


class drm_mode_create_dumb(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("height", ctypes.c_uint32),
        ("width", ctypes.c_uint32),
        ("bpp", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("handle", ctypes.c_uint32),
        ("pitch", ctypes.c_uint32),
        ("size", ctypes.c_uint64),
    ]


class drm_mode_map_dumb(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("handle", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("offset", ctypes.c_uint64),
    ]


class drm_mode_destroy_dumb(ctypes.Structure):  # noqa: N801
    _fields_ = [("handle", ctypes.c_uint32)]


DRM_IOCTL_VERSION = IOWR(DRM_IOCTL_BASE, 0x00, drm_version)
DRM_IOCTL_GEM_CLOSE = IOW(DRM_IOCTL_BASE, 0x09, drm_gem_close)
DRM_IOCTL_PRIME_HANDLE_TO_FD = IOWR(DRM_IOCTL_BASE, 0x2D, drm_prime_handle)
DRM_IOCTL_PRIME_FD_TO_HANDLE = IOWR(DRM_IOCTL_BASE, 0x2E, drm_prime_handle)
DRM_IOCTL_MODE_CREATE_DUMB = IOWR(DRM_IOCTL_BASE, 0xB2, drm_mode_create_dumb)
DRM_IOCTL_MODE_MAP_DUMB = IOWR(DRM_IOCTL_BASE, 0xB3, drm_mode_map_dumb)
DRM_IOCTL_MODE_DESTROY_DUMB = IOWR(DRM_IOCTL_BASE, 0xB4, drm_mode_destroy_dumb)
