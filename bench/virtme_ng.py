"""virtme-ng's TCG boot on a given kernel: the yardstick of issue 14.

    python bench/virtme_ng.py                  # the suite's own kernel (ensure_kernel())
    python bench/virtme_ng.py PATH/bzImage -n 5

Issue 14 asks for the suite's boot to agent ready to be at least 4x faster than
virtme-ng's TCG boot on the same kernel. This module times
`vng --run IMAGE --disable-kvm --force-9p --verbose --exec 'echo MARKER'` from
the start of vng until MARKER, printed by the command in the guest, reaches the
host: virtme-ng's boot to "a command has run", the counterpart of our "agent
ready". Whether and when vng then exits by itself is reported alongside.

Installed apart from the repository (its own venv, never a project dependency):

    python3 -m venv ~/.cache/dmabuf-conformance/virtme-ng/venv
    ~/.cache/dmabuf-conformance/virtme-ng/venv/bin/pip install virtme-ng==1.42

What it takes to boot virtme-ng on this kind of machine (measured with 1.42, QEMU 7.2):
- --force-9p: Debian 12's only virtiofsd is QEMU's legacy C one
  (/usr/lib/qemu/virtiofsd), which rejects virtme-ng's arguments ("fuse: invalid
  argument"); vng then waits for it and falls back to 9p anyway. Forcing 9p
  measures the boot, not that wait, and it is the transport the suite uses.
- --verbose: the host has no udev, so virtme-ng-init finds no
  /dev/virtio-ports/virtme.* links and runs the command on the serial console,
  which vng sends to /dev/null unless --verbose. The marker is only seen with it.
- A kernel without CONFIG_BLOCK (the suite's tinyconfig) never mounts virtme-ng's
  root: vng passes rootfstype=9p but no root=, and 6.1's mount_root() only tries a
  9p root by name when root= is given; its "/dev/root" fallback is under
  CONFIG_BLOCK. The guest panics with "Requested init .../virtme-ng-init failed
  (error -2)". root=/dev//dev/root fixes it without touching vng: the kernel strips
  the first "/dev/" and mounts the 9p tag "/dev/root" vng exported. It is added
  only when the image's .config says CONFIG_BLOCK is not set.
- Without CONFIG_ACPI the guest's poweroff becomes a halt ("reboot: System
  halted"), QEMU stays up and vng never exits; such a run is stopped here once the
  marker has been seen and the halt printed, and has no exit time.
- Without CONFIG_OVERLAY_FS each of virtme-ng's eight rw overlays fails (ENODEV)
  and the guest's /etc, /tmp, ... stay read-only; the command still runs. Each
  failed mount first has the kernel run the host's modprobe for "fs-overlay"
  (CONFIG_MODULES=y) over 9p, which under TCG costs ~0.7 s per overlay: about
  6 s of the boot on the suite's kernel.
- Under TCG on 2 shared cores the figure moves 2-4x with other load; compare it
  only with a figure taken in the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import List, Optional, Tuple

VENV_BIN = Path.home() / ".cache" / "dmabuf-conformance" / "virtme-ng" / "venv" / "bin"

# A run that has neither printed the marker nor exited by then is a failed boot.
RUN_TIMEOUT_S = 240.0
# After the guest has halted, vng gets this long to exit by itself before it is
# stopped (a guest without ACPI halts instead of powering off; QEMU then idles).
HALT_GRACE_S = 3.0
# The guest's last word when it powers off or halts: the run is over.
_GUEST_DOWN = re.compile(r"reboot: (System halted|Power down)")
# Console lines worth quoting when a boot fails.
_FAILURE = re.compile(r"Kernel panic|Requested init|VFS: |Unable to|failed|No such|error", re.I)


def find_vng() -> Optional[Path]:
    """The venv's vng (see the module docstring), else one on PATH."""
    if (VENV_BIN / "vng").is_file():
        return VENV_BIN / "vng"
    found = shutil.which("vng")
    return Path(found) if found else None


def _kernel_config(image: Path) -> Optional[str]:
    # A bzImage sits at KDIR/arch/x86/boot/bzImage; the .config is in KDIR.
    for parent in list(image.resolve().parents)[:4]:
        config = parent / ".config"
        if config.is_file():
            return config.read_text(errors="replace")
    return None


def vng_command(vng: Path, image: Path, marker: str) -> Tuple[List[str], List[str]]:
    """The vng command line for one timed boot, and notes on what was adapted."""
    cmd = [str(vng), "--run", str(image), "--disable-kvm", "--force-9p", "--verbose",
           "--exec", f"echo {marker}"]
    notes = []
    config = _kernel_config(image)
    if config is not None and "# CONFIG_BLOCK is not set" in config:
        # See the module docstring: 6.1 mounts a nodev root only by root= name.
        cmd += ["--append", "root=/dev//dev/root"]
        notes.append("no CONFIG_BLOCK: appended root=/dev//dev/root")
    if config is not None and "# CONFIG_ACPI is not set" in config:
        notes.append("no CONFIG_ACPI: the guest halts and vng does not exit by itself")
    if config is not None and "# CONFIG_OVERLAY_FS is not set" in config:
        notes.append("no CONFIG_OVERLAY_FS: virtme-ng's rw overlays fail")
    return cmd, notes


def _stop(proc: subprocess.Popen) -> None:
    # vng, virtme-run and QEMU share the session vng was started in; end only that.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _env() -> dict:
    env = dict(os.environ)
    # vng runs virtme-run by name, so the venv's bin must be on PATH.
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def boot_once(cmd: List[str], marker: str,
              timeout: float = RUN_TIMEOUT_S) -> Tuple[Optional[float], Optional[float], List[str]]:
    """One boot: (seconds to the marker, seconds to vng's own exit, console lines).

    Either figure is None when it did not happen (no marker: the boot failed;
    no exit: vng was stopped after the guest halted, or at the timeout).
    """
    t0 = time.monotonic()
    # cwd=/ : vng makes the guest chdir to the host's cwd; keep it the same for every run.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd="/", env=_env(),
                            start_new_session=True)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines: List[str] = []
    buf = b""
    t_marker: Optional[float] = None
    t_down: Optional[float] = None
    try:
        while True:
            now = time.monotonic()
            if now - t0 > timeout or (t_down is not None and now - t_down > HALT_GRACE_S):
                _stop(proc)
                return t_marker, None, lines
            if not sel.select(timeout=0.05):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                proc.wait()
                return t_marker, time.monotonic() - t0, lines
            buf += chunk
            *done, buf = buf.split(b"\n")
            for raw in done:
                line = raw.decode(errors="replace").rstrip("\r")
                lines.append(line)
                # The command line only carries the command base64-encoded, so an
                # exact line equal to the marker is the command's own output.
                if t_marker is None and line.strip() == marker:
                    t_marker = time.monotonic() - t0
                if t_down is None and _GUEST_DOWN.search(line):
                    t_down = time.monotonic()
    finally:
        sel.close()
        if proc.poll() is None:
            _stop(proc)


def qemu_command(image: Path) -> Optional[str]:
    """The QEMU command line vng would run for a timed boot (from vng --dry-run)."""
    vng = find_vng()
    if vng is None:
        return None
    cmd = vng_command(vng, Path(image), "VNG-BENCH-DRY-RUN")[0] + ["--dry-run"]
    out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         cwd="/", env=_env(), timeout=60)
    for line in (out.stdout + out.stderr).splitlines():
        if "qemu-system-" in line:
            # The line may carry vng's own messages before the command.
            start = line.rfind(" ", 0, line.index("qemu-system-")) + 1
            return line[start:]
    return None


def measure_virtme_boot(image: Path, runs: int = 3) -> Tuple[Optional[float], str]:
    """Median seconds from vng's start to its --exec command having run, or None and why.

    The text names the runs' figures, vng's own exit times where it exited by
    itself, and what had to be adapted for this kernel (see the module docstring).
    """
    vng = find_vng()
    if vng is None:
        return None, (f"vng not found (neither {VENV_BIN / 'vng'} nor on PATH); "
                      "pip install virtme-ng into that venv")
    if not Path(image).is_file():
        return None, f"no kernel image at {image}"
    marker = f"VNG-BENCH-{uuid.uuid4().hex[:12]}"
    cmd, notes = vng_command(vng, Path(image), marker)
    to_marker: List[float] = []
    to_exit: List[str] = []
    for _ in range(runs):
        t_marker, t_exit, lines = boot_once(cmd, marker)
        if t_marker is None:
            why = [ln.strip() for ln in lines if _FAILURE.search(ln)][-4:]
            return None, ("virtme-ng did not run the command"
                          + (f" (vng exited after {t_exit:.1f} s)" if t_exit is not None
                             else " (stopped)")
                          + ": " + (" | ".join(why) or "no console output")
                          + ("; " + "; ".join(notes) if notes else ""))
        to_marker.append(t_marker)
        to_exit.append(f"{t_exit:.2f}" if t_exit is not None else "-")
    median = statistics.median(to_marker)
    text = (f"vng {'/'.join(f'{t:.2f}' for t in to_marker)} s to the command's output"
            f" (vng exit {'/'.join(to_exit)} s)")
    if notes:
        text += "; " + "; ".join(notes)
    return median, text


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", type=Path,
                        help="bzImage (default: the suite's kernel from ensure_kernel())")
    parser.add_argument("-n", "--runs", type=int, default=3)
    parser.add_argument("--show-qemu", action="store_true",
                        help="also print the QEMU command line vng runs (vng --dry-run)")
    args = parser.parse_args(argv)
    image = args.image
    if image is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from conformance.qemu.kernel import ensure_kernel

        image = ensure_kernel().image
    median, text = measure_virtme_boot(image, args.runs)
    figure = f"{median:.2f} s" if median is not None else "n/a"
    print(f"{'virtme-ng TCG boot to command (median)':<44} {figure:>14}  {image}")
    print(f"  {text}")
    if args.show_qemu:
        print(f"  qemu: {qemu_command(image)}")
    return 0 if median is not None else 1


if __name__ == "__main__":
    sys.exit(main())
