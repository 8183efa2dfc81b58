"""memfd and file-seal constants (include/uapi/linux/memfd.h, linux/fcntl.h).

Written out rather than taken from ``os``/``fcntl``: Python exposes the seal
constants only from 3.8 and ``os.memfd_create`` only from 3.8, and the agent
runs on boards' Python 3.7.  The values are the kernel's ABI and never change.
"""

MFD_CLOEXEC = 0x0001
MFD_ALLOW_SEALING = 0x0002
MFD_HUGETLB = 0x0004

F_ADD_SEALS = 1024 + 9  # F_LINUX_SPECIFIC_BASE + 9
F_GET_SEALS = 1024 + 10

F_SEAL_SEAL = 0x0001
F_SEAL_SHRINK = 0x0002
F_SEAL_GROW = 0x0004
F_SEAL_WRITE = 0x0008
F_SEAL_FUTURE_WRITE = 0x0010  # since 5.1
