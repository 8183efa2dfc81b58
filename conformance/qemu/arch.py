"""Per-architecture data for building and booting the test kernel.

Everything architecture-specific lives here as data, so that adding a guest
architecture (aarch64 next) means adding one ``ArchSpec`` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.errors import SetupError


class UnknownArch(SetupError):
    """An architecture name with no ``ArchSpec``."""


@dataclass(frozen=True)
class ArchSpec:
    name: str  # as `uname -m` says it
    kernel_arch: str  # ARCH= for the kernel's make
    image_target: str  # make target that produces the boot image
    image_path: str  # that image, relative to the O= build dir
    qemu_binary: str
    machine: tuple[str, ...]  # -machine/-cpu arguments
    console: str  # the serial console device name inside the guest
    cross_compile: str = ""  # CROSS_COMPILE= when the host is another arch
    apt_qemu_package: str = ""
    # (offset, bytes) every boot image of this arch carries, so a wrong --kernel
    # is refused with a clear message instead of a guest that never boots.
    image_magic: tuple[int, bytes] = (0, b"")


ARCHES: dict[str, ArchSpec] = {
    "x86_64": ArchSpec(
        name="x86_64",
        kernel_arch="x86_64",
        image_target="bzImage",
        image_path="arch/x86/boot/bzImage",
        qemu_binary="qemu-system-x86_64",
        # q35 would add an AHCI controller and more probing at boot; pc is lighter.  qemu64
        # rather than max: TCG then emulates no AVX & co., which measured ~1.5 s faster to
        # agent-ready (6.8-8.2 s against 8.6-9.7 s).
        machine=("-machine", "pc", "-cpu", "qemu64"),
        console="ttyS0",
        apt_qemu_package="qemu-system-x86",
        image_magic=(0x202, b"HdrS"),  # the x86 boot protocol header (Documentation/x86/boot)
    ),
    # aarch64 (not yet booted; kept as data so the rest of the code stays arch-neutral):
    "aarch64": ArchSpec(
        name="aarch64",
        kernel_arch="arm64",
        image_target="Image",
        image_path="arch/arm64/boot/Image",
        qemu_binary="qemu-system-aarch64",
        machine=("-machine", "virt", "-cpu", "max"),
        console="ttyAMA0",
        cross_compile="aarch64-linux-gnu-",
        apt_qemu_package="qemu-system-arm",
        image_magic=(0x38, b"ARM\x64"),  # Documentation/arm64/booting: the Image header
    ),
}


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHES[name]
    except KeyError:
        raise UnknownArch(
            f"unknown QEMU guest architecture {name!r}; known: {', '.join(sorted(ARCHES))}"
        ) from None
