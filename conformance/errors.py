"""Errors of the suite.

Two families, kept apart on purpose:

* ``KernelError`` and its subclasses: the kernel (or the model standing in for
  it) refused an operation.  They keep the errno, the name of the operation
  (``DMA_HEAP_IOCTL_ALLOC``, ``mmap``, ...) and the argument, so a failing case
  can say exactly which call returned what.  Cases assert on these classes
  (``pytest.raises(InvalidArgument)``), which is the same as asserting the errno.
* ``SetupError`` and its subclasses: the run itself cannot go on as asked (an
  unknown exporter name, a missing heap, no probe module, a guest that will not
  boot).  They carry a message meant for the person running the suite.
"""

from __future__ import annotations

import errno as _errno
import os

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Any


class KernelError(OSError):
    """An operation failed with an errno."""

    def __init__(self, err: int, op: str, arg: Any = None) -> None:
        super().__init__(err, os.strerror(err))
        self.op = op
        self.arg = arg

    @property
    def errno_name(self) -> str:
        return _errno.errorcode.get(self.errno, str(self.errno))

    def __str__(self) -> str:
        arg = "" if self.arg is None else f" with {self.arg!r}"
        return f"{self.op}{arg} failed: {self.errno_name} ({self.strerror})"

    def __reduce__(self):  # keeps the class and fields across pickling (xdist, RPC)
        return (kernel_error, (self.errno, self.op, self.arg))


class InvalidArgument(KernelError):
    """EINVAL."""


class OutOfMemory(KernelError):
    """ENOMEM."""


class BadFileDescriptor(KernelError):
    """EBADF."""


class NotATypewriter(KernelError):
    """ENOTTY: the file does not know the ioctl."""


class PermissionDenied(KernelError):
    """EPERM or EACCES."""


class NoDevice(KernelError):
    """ENODEV or ENXIO."""


class NotSupported(KernelError):
    """EOPNOTSUPP."""


class Busy(KernelError):
    """EBUSY."""


class BadAddress(KernelError):
    """EFAULT."""


class TooManyOpenFiles(KernelError):
    """EMFILE or ENFILE."""


class NoSuchEntry(KernelError):
    """ENOENT."""


class Interrupted(KernelError):
    """EINTR or EAGAIN."""


_BY_ERRNO: dict[int, type[KernelError]] = {
    _errno.EINVAL: InvalidArgument,
    _errno.ENOMEM: OutOfMemory,
    _errno.EBADF: BadFileDescriptor,
    _errno.ENOTTY: NotATypewriter,
    _errno.EPERM: PermissionDenied,
    _errno.EACCES: PermissionDenied,
    _errno.ENODEV: NoDevice,
    _errno.ENXIO: NoDevice,
    _errno.EOPNOTSUPP: NotSupported,
    _errno.EBUSY: Busy,
    _errno.EFAULT: BadAddress,
    _errno.EMFILE: TooManyOpenFiles,
    _errno.ENFILE: TooManyOpenFiles,
    _errno.ENOENT: NoSuchEntry,
    _errno.EINTR: Interrupted,
    _errno.EAGAIN: Interrupted,
}


def kernel_error(err: int, op: str, arg: Any = None) -> KernelError:
    """The typed exception for ``err`` (``KernelError`` itself for rare errnos)."""
    return _BY_ERRNO.get(err, KernelError)(err, op, arg)


class SetupError(Exception):
    """The run cannot go on as asked; the message says what to do."""


class UnknownExporter(SetupError):
    """An exporter name that the target does not offer."""


class NoExporterFound(SetupError):
    """Discovery found no exporter on the target."""


class ProbeUnavailable(SetupError):
    """Kernel-side operations need the probe importer module, which is not loaded."""


class NotAvailableOnTarget(SetupError):
    """The target cannot do this operation at all (e.g. kmap on a 5.6+ kernel)."""


class EventsDropped(NotAvailableOnTarget):
    """The probe's event log was full and lost events: what it shows is not all that happened.

    A case that judges by the log cannot pass on an incomplete one; the plugin
    reports it as not checked (like any ``NotAvailableOnTarget``).  The
    message is the whole record, so the class crosses the guest channel.
    """

    @classmethod
    def of(cls, dropped: int, log: str) -> EventsDropped:
        return cls(
            f"the probe's {log} dropped {dropped} event(s) (it holds 4096 per log): the "
            "calls the case judges by may be among them, so its log cannot be checked"
        )


class GuestError(SetupError):
    """The QEMU guest did not boot, panicked or stopped answering."""

    def __init__(self, message: str, console_log: str = "") -> None:
        super().__init__(message)
        self.console_log = console_log
