"""The ``qemu`` target: the agent in a QEMU guest booted for the run.

The guest runs ``LocalTarget`` on a kernel built for the suite, so results are
those of real kernel code.  Everything but the link is ``AgentTarget``'s: the
guest (``conformance.qemu.boot.Guest``) boots, restarts after a panic or hang,
and carries requests over its virtio-serial port.
"""

from __future__ import annotations

from conformance.qemu.boot import DEFAULT_OP_TIMEOUT, DEFAULT_READY_TIMEOUT, Guest
from conformance.targets.agent import AgentTarget


class QemuTarget(AgentTarget):
    name = "qemu"

    def __init__(self, guest: Guest, *, op_timeout: float = DEFAULT_OP_TIMEOUT,
                 ready_timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        super().__init__(guest, op_timeout=op_timeout, ready_timeout=ready_timeout)
        self.guest = guest
