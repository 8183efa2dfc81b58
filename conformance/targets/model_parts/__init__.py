"""The model target's parts, one job each, combined by ``conformance.targets.model.ModelTarget``.

``fds`` the fd table and handles; ``uapi`` the dma-buf and dma-heap ioctls;
``mappings`` user mmap and mremap; ``importer`` the kernel-side importer;
``udmabuf`` udmabuf_create's validation; ``prime`` DRM PRIME; ``fork`` fork.
"""
