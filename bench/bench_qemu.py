"""Benchmarks of the QEMU target (printed, never asserted).

    python bench/bench_qemu.py                 # boot, round trip, bindings vs C
    python bench/bench_qemu.py --cold-build    # also a cold kernel build (~5 min, own cache)
    python bench/bench_qemu.py --whole-run     # also the cases on -n 1 and -n 2
    python bench/bench_qemu.py --case-overhead # also the per-case overhead (one guest)
    python bench/bench_qemu.py --arch aarch64 [--page-size 16k]   # the arm64 guest

Goals from the issue: boot-to-agent-ready <= 6 s under TCG, median op round
trip <= 2 ms, ctypes bindings <= 2x a C loop doing the same ioctls in the guest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from conformance.qemu.arch import get_arch  # noqa: E402
from conformance.qemu.boot import Guest, GuestConfig  # noqa: E402
from conformance.qemu.kernel import cache_root, ensure_kernel  # noqa: E402
from conformance.qemu.rootfs import ensure_root  # noqa: E402
from conformance.targets.qemu import QemuTarget  # noqa: E402


def _row(what: str, value: str, goal: str = "") -> None:
    print(f"{what:<44} {value:>14}  {goal}", flush=True)


def bench_cold_build() -> None:
    with tempfile.TemporaryDirectory(prefix="dmabuf-cold-") as d:
        os.environ["DMABUF_CONFORMANCE_CACHE"] = d
        t0 = time.monotonic()
        ensure_kernel()
        _row("cold kernel build (unpack+config+bzImage)", f"{time.monotonic() - t0:.0f} s")
        del os.environ["DMABUF_CONFORMANCE_CACHE"]


def bench_guest(boots: int, pings: int, loops: int, arch: str = "x86_64",
                page_size: str = "4k") -> None:
    build = ensure_kernel(arch=arch, page_size=page_size)
    stamp = build.kdir / ".dmabuf-conformance-build.json"
    if stamp.exists():
        import json

        _row(f"{arch} {page_size} kernel build recorded in the cache",
             f"{json.loads(stamp.read_text())['seconds']} s")
    config = GuestConfig(kernel=build, arch=arch)
    if arch != platform.machine():
        # A foreign guest boots its own Debian root (made once, then cached).
        t0 = time.monotonic()
        root = ensure_root(arch)
        _row(f"{arch} guest root (cached after the first)", f"{time.monotonic() - t0:.1f} s")
        config = GuestConfig(kernel=build, arch=arch, root=root, python=root.python)
    target = QemuTarget(Guest(config))
    try:
        times = []
        for i in range(boots):
            if i == 0:
                target.start()
            else:
                target.restart()
            times.append(target.guest.last_boot_s)
        _row(f"{arch} boot to agent ready (median of {boots})",
             f"{statistics.median(times):.2f} s", "goal <= 6 s")
        _row("agent: creating LocalTarget in the guest",
             f"{target.guest.ready_info.get('startup_s', 0):.2f} s")

        rtts = []
        for _ in range(pings):
            t0 = time.perf_counter()
            target.call("ping")
            rtts.append((time.perf_counter() - t0) * 1e3)
        _row("op round trip, ping (median)", f"{statistics.median(rtts):.2f} ms", "goal <= 2 ms")
        buf = target.allocate("heap:system", 4096)
        rtts = []
        for _ in range(pings):
            t0 = time.perf_counter()
            target.buffer_size(buf)
            rtts.append((time.perf_counter() - t0) * 1e3)
        _row("op round trip, buffer_size (median)", f"{statistics.median(rtts):.2f} ms")
        target.close_all()

        py = target.call("bench_ops", "heap:system", loops)
        c = _c_loop(target, loops, arch)
        for key, label in (("alloc_close_us", "allocate+close"),
                           ("sync_start_end_us", "SYNC start+end pair")):
            ratio = f"{py[key] / c[key]:.2f}x C" if c.get(key) else "n/a"
            _row(f"in guest, {label}: ctypes / C", f"{py[key]:.1f}/{c.get(key, 0):.1f} us",
                 f"{ratio} (goal <= 2x)")
    finally:
        target.stop()


def _c_loop(target: QemuTarget, loops: int, arch: str = "x86_64") -> dict[str, float]:
    """Compile the C loop on the host into the cache (visible in the guest over 9p), run it."""
    out = cache_root() / "bench" / f"bench_uapi-{arch}"
    out.parent.mkdir(parents=True, exist_ok=True)
    if arch == platform.machine():
        cc = shutil.which("gcc") or shutil.which("cc")
        static: list[str] = []
    else:
        # Cross-compiled and static: the guest root's libc is not the cross toolchain's.
        cc = shutil.which(f"{get_arch(arch).cross_compile}gcc")
        static = ["-static"]
    if cc is None:
        print("  (no C compiler for the guest: C comparison skipped)")
        return {}
    built = subprocess.run([cc, "-O2", *static, "-o", str(out),
                            str(REPO / "qemu" / "guest" / "bench_uapi.c")],
                           capture_output=True, text=True)
    if built.returncode != 0:
        # A cross compiler without its libc headers (libc6-dev-arm64-cross) cannot build it.
        why = (built.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  (the C loop did not build for {arch}: {why}; C comparison skipped)")
        return {}
    # A foreign guest sees the host's / under /host.
    guest_out = target.guest.config.host_path(out)
    r = target.call("exec", [guest_out, "/dev/dma_heap/system", str(loops)], timeout=120)
    if r["returncode"] != 0:
        print(f"  (C loop failed: {r['stderr'].strip()})")
        return {}
    return {k: float(v) for k, v in (kv.split("=") for kv in r["stdout"].split())}


def bench_whole_run() -> None:
    for workers in (1, 2):
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "cases"), "--target=qemu",
                            "-q", "-p", "no:cacheprovider", "-n", str(workers),
                            f"--reports-dir={tempfile.mkdtemp(prefix='dmabuf-bench-')}"],
                           cwd=REPO, capture_output=True, text=True)
        last = (r.stdout.strip().splitlines() or ["?"])[-1]
        _row(f"whole run, -n {workers}", f"{time.monotonic() - t0:.0f} s", last)


# -- per-case overhead (issue 14): what the suite adds to each case on one guest -------


def bench_case_overhead(pytest_args: Sequence[str] = ("--exporter=heap:system",),
                        min_cases: int = 100) -> list[dict[str, Any]]:
    """Median per-case overhead of a ``--target=qemu -n 0`` run (fixtures/timing.py).

    Overhead: an item's whole run-test protocol minus its case body (fixtures/timing.py
    defines it).  The median is over the cases whose body ran; a case skipped before it
    (not applicable) costs less and would flatter the figure.  One guest, no xdist: the
    figure is the suite's, not shared with a second guest's emulation.
    """
    with tempfile.TemporaryDirectory(prefix="dmabuf-overhead-") as d:
        timing = Path(d) / "timing.jsonl"
        r = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "cases"), "--target=qemu",
                            "-n", "0", "-q", "-p", "no:cacheprovider", f"--timing-file={timing}",
                            f"--reports-dir={d}/reports", *pytest_args],
                           cwd=REPO, capture_output=True, text=True)
        records = ([json.loads(line) for line in timing.read_text().splitlines()]
                   if timing.exists() else [])
    ran = [rec for rec in records if rec["body_ran"]]
    if len(ran) < min_cases:
        last = (r.stdout.strip().splitlines() or ["?"])[-1]
        print(f"  (only {len(ran)} cases ran their body, {min_cases} wanted: {last})")
    if not ran:
        return records
    overhead = statistics.median(rec["overhead_ms"] for rec in ran)
    _row(f"per-case overhead (median of {len(ran)} cases)", f"{overhead:.1f} ms", "goal <= 10 ms")
    _row(f"  of every item, skips included ({len(records)})",
         f"{statistics.median(rec['overhead_ms'] for rec in records):.1f} ms")
    _row("  case body (median)", f"{statistics.median(rec['body_ms'] for rec in ran):.1f} ms")
    return records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold-build", action="store_true")
    ap.add_argument("--whole-run", action="store_true")
    ap.add_argument("--case-overhead", action="store_true",
                    help="also the per-case overhead, median over the cases of one exporter")
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--pings", type=int, default=300)
    ap.add_argument("--loops", type=int, default=2000)
    ap.add_argument("--arch", default="x86_64", help="guest architecture (x86_64, aarch64)")
    ap.add_argument("--page-size", default="4k", help="4k, or 16k with --arch aarch64")
    args = ap.parse_args()
    if args.cold_build:
        bench_cold_build()
    bench_guest(args.boots, args.pings, args.loops, args.arch, args.page_size)
    if args.whole_run:
        bench_whole_run()
    if args.case_overhead:
        bench_case_overhead()
    return 0


if __name__ == "__main__":
    sys.exit(main())
