"""Per-architecture data for building and booting the test kernel.

Everything architecture-specific lives here as data, so that adding a guest
architecture means adding one ``ArchSpec`` (and, for a guest that cannot run
the host's binaries, a Debian root: ``conformance/qemu/rootfs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.errors import SetupError

DEFAULT_PAGE_SIZE = "4k"


class UnknownArch(SetupError):
    """An architecture name with no ``ArchSpec``."""


class UnsupportedPageSize(SetupError):
    """A page size the architecture (or the suite's fragments) does not offer."""


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
    # Kernel arguments this arch's guest always gets (after oops=panic).
    kernel_args: tuple[str, ...] = ()
    # Base page sizes a build can ask for (--page-size); the first is the default.
    page_sizes: tuple[str, ...] = (DEFAULT_PAGE_SIZE,)
    debian_arch: str = ""  # dpkg's name, for the guest's own Debian root

    def check_page_size(self, page_size: str) -> str:
        """``page_size`` normalised ("16K" -> "16k"), or a clear error."""
        normal = (page_size or DEFAULT_PAGE_SIZE).strip().lower()
        if normal not in self.page_sizes:
            raise UnsupportedPageSize(
                f"page size {page_size!r} is not offered for {self.name} guests "
                f"(offered: {', '.join(self.page_sizes)})")
        return normal


ARCHES: dict[str, ArchSpec] = {
    "x86_64": ArchSpec(
        name="x86_64",
        kernel_arch="x86_64",
        image_target="bzImage",
        image_path="arch/x86/boot/bzImage",
        qemu_binary="qemu-system-x86_64",
        # q35 would add an AHCI controller and more probing at boot; pc is lighter.  qemu64
        # rather than max: TCG then emulates no AVX & co., which measured ~1.5 s faster to
        # agent-ready (6.8-8.2 s against 8.6-9.7 s).  +rdrand (TCG emulates it) lets
        # random.trust_cpu=on seed the kernel's random pool at once: without it the
        # interpreter waited up to ~1 s in getrandom(2) for the pool under emulation.
        machine=("-machine", "pc", "-cpu", "qemu64,+rdrand"),
        console="ttyS0",
        apt_qemu_package="qemu-system-x86",
        image_magic=(0x202, b"HdrS"),  # the x86 boot protocol header (Documentation/x86/boot)
        # TCG's TSC follows the host clock; without this the watchdog marks it unstable and
        # the guest falls back to jiffies (clock_gettime resolution of a tick).
        kernel_args=("tsc=reliable", "random.trust_cpu=on"),
        debian_arch="amd64",
    ),
    "aarch64": ArchSpec(
        name="aarch64",
        kernel_arch="arm64",
        image_target="Image",
        image_path="arch/arm64/boot/Image",
        qemu_binary="qemu-system-aarch64",
        # max, not cortex-a57: an a57 has no 16 KiB translation granule, and a 16k kernel
        # hangs silently there (qemu-facts.md); max boots both page sizes as fast.
        machine=("-machine", "virt", "-cpu", "max"),
        console="ttyAMA0",
        cross_compile="aarch64-linux-gnu-",
        apt_qemu_package="qemu-system-arm",
        image_magic=(0x38, b"ARM\x64"),  # Documentation/arm64/booting: the Image header
        # Python waits ~1 s for the random pool under TCG; -cpu max has FEAT_RNG, and
        # trusting it makes the pool ready at once (0.75 s to Python instead of 2.1 s).
        kernel_args=("random.trust_cpu=on",),
        page_sizes=(DEFAULT_PAGE_SIZE, "16k"),
        debian_arch="arm64",
    ),
}


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHES[name]
    except KeyError:
        raise UnknownArch(
            f"unknown QEMU guest architecture {name!r}; known: {', '.join(sorted(ARCHES))}"
        ) from None
