"""The suite's user-space cases against the kernel's own selftests, in the same guest.

    python bench/bench_cases_vs_kselftest.py                  # heap:system, heap:reserved, udmabuf
    python bench/bench_cases_vs_kselftest.py --exporter heap:system --repeat 5

For each exporter with an upstream selftest it prints:

* the selftest's wall time in the guest (tools/testing/selftests/dmabuf-heaps/
  dmabuf-heap.c for heaps, drivers/dma-buf/udmabuf.c for udmabuf), built
  statically on the host against the kernel tree's uapi headers and run
  through the agent's ``exec`` op.  The heap selftest walks every heap in
  /dev/dma_heap; to time one heap it runs in a private mount namespace where
  /dev/dma_heap holds that heap only.  The cost of ``exec`` itself (same
  wrapper, /bin/true) is measured and subtracted;
* the wall time of the equivalent user-space cases (families alloc, mmap,
  sync, zero_fill; kernel-side cases excluded) on that exporter, from one
  ``pytest cases --target=qemu`` run: the sum of the cases' own durations
  (setup+call+teardown, from JUnit) and the run's total wall time (boot and
  collection included).

Goal from the issue: cases <= 3x the selftest.  Printed, never asserted.  The
two do not test the same amount: the selftest makes a handful of allocations
per heap; the cases check many more contracts (and each step against the
reference model); the figures say what the suite costs, not that it is wasteful.
"""

from __future__ import annotations

import argparse
import glob
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from conformance.errors import SetupError  # noqa: E402
from conformance.qemu.boot import Guest, GuestConfig  # noqa: E402
from conformance.qemu.kernel import cache_root, ensure_kernel  # noqa: E402
from conformance.targets.qemu import QemuTarget  # noqa: E402

FAMILIES = "(alloc or mmap or sync or zero_fill) and not kernel_side"
SELFTESTS = {
    "heap": "tools/testing/selftests/dmabuf-heaps/dmabuf-heap.c",
    "udmabuf": "tools/testing/selftests/drivers/dma-buf/udmabuf.c",
}


class BenchSetupError(SetupError):
    """The comparison cannot be set up (no kernel tree, no compiler, build failed)."""


@dataclass
class Figure:
    exporter: str
    selftest_s: float | None = None
    selftest_note: str = ""
    cases_s: float | None = None
    cases_count: int = 0


def find_tree(explicit: str | None) -> Path:
    if explicit:
        tree = Path(explicit)
    else:
        found = sorted(glob.glob(str(cache_root() / "src" / "*" / "linux-source-6.1")))
        if not found:
            raise BenchSetupError(
                f"no unpacked kernel tree under {cache_root() / 'src'}; run "
                "`python -m conformance.qemu.kernel build` first or pass --kernel-tree")
        tree = Path(found[0])
    if not (tree / SELFTESTS["heap"]).is_file():
        raise BenchSetupError(f"{tree} has no {SELFTESTS['heap']}: not a kernel tree?")
    return tree


def build_selftests(tree: Path) -> dict[str, Path]:
    """Static binaries of the selftests, against the tree's own uapi headers (cached)."""
    cc = shutil.which("gcc")
    if cc is None:
        raise BenchSetupError("gcc not found: apt-get install gcc libc6-dev")
    out = cache_root() / "bench" / "selftests"
    hdr = out / "headers"
    if not (hdr / "include" / "linux" / "dma-heap.h").is_file():
        # O= keeps the shared source tree clean: an in-tree headers_install
        # leaves generated files that make later O= kernel builds refuse the tree.
        with tempfile.TemporaryDirectory(prefix="dmabuf-hdr-") as objdir:
            r = subprocess.run(["make", "-s", "-C", str(tree), f"O={objdir}", "headers_install",
                                f"INSTALL_HDR_PATH={hdr}"], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchSetupError(f"make headers_install failed:\n{r.stderr[-2000:]}")
    bins: dict[str, Path] = {}
    for kind, rel in SELFTESTS.items():
        src = tree / rel
        binary = out / f"{kind}-selftest"
        if not binary.exists() or binary.stat().st_mtime < src.stat().st_mtime:
            r = subprocess.run([cc, "-static", "-O2", "-Wall", f"-I{hdr / 'include'}",
                                "-o", str(binary), str(src)], capture_output=True, text=True)
            if r.returncode != 0:
                raise BenchSetupError(f"building {rel} failed:\n{r.stderr[-2000:]}")
        bins[kind] = binary
    return bins


# Times the program from inside the guest (spawn included, like any test
# runner would pay), so the namespace set-up and the interpreter's start are
# not counted.
_TIMER = ("import subprocess, sys, time; t = time.perf_counter(); "
          "r = subprocess.run(sys.argv[1:]); "
          "print('wall_s=%.6f' % (time.perf_counter() - t)); sys.exit(r.returncode)")


def _timed_argv(program: list[str], heap: str | None) -> list[str]:
    timed = [sys.executable, "-c", _TIMER, *program]
    if heap is None:
        return timed
    # A private mount namespace whose /dev/dma_heap shows one heap: the
    # unmodified selftest then tests that heap only.  --rbind carries the
    # bind-mounted device node along.
    script = (f"mkdir -p /tmp/one-heap && mount -t tmpfs one /tmp/one-heap && "
              f": > /tmp/one-heap/{heap} && "
              f"mount --bind /dev/dma_heap/{heap} /tmp/one-heap/{heap} && "
              f"mount --rbind /tmp/one-heap /dev/dma_heap && exec \"$@\"")
    return ["unshare", "-m", "sh", "-c", script, "sh", *timed]


def _timed_exec(target: QemuTarget, argv: list[str], repeat: int) -> tuple[float, dict]:
    """Best in-guest wall time over ``repeat`` runs, and the last reply."""
    best, reply = float("inf"), {}
    for _ in range(repeat):
        reply = target.call("exec", argv, timeout=600)
        for line in reply.get("stdout", "").splitlines():
            if line.startswith("wall_s="):
                best = min(best, float(line.split("=", 1)[1]))
    return best, reply


def selftest_figure(target: QemuTarget, exporter: str, bins: dict[str, Path],
                    repeat: int) -> tuple[float | None, str]:
    if exporter.startswith("heap:"):
        heap: str | None = exporter.split(":", 1)[1]
        program = str(bins["heap"])
    elif exporter == "udmabuf":
        heap, program = None, str(bins["udmabuf"])
    else:
        return None, "no upstream selftest"
    spawn, _ = _timed_exec(target, _timed_argv(["/bin/true"], heap), repeat)
    wall, reply = _timed_exec(target, _timed_argv([program], heap), repeat)
    lines = [ln for ln in (reply.get("stdout", "") + reply.get("stderr", "")).splitlines()
             if ln.strip() and not ln.startswith("wall_s=")]
    note = f"rc={reply.get('returncode')}, spawn of /bin/true {spawn * 1e3:.1f} ms (included)"
    if reply.get("returncode") != 0 or wall == float("inf"):
        note += f"; {lines[-1].strip() if lines else 'no output'}"
        return None, note
    return wall, note


def run_cases(exporters: list[str], extra: list[str]) -> tuple[float, dict[str, tuple[float, int]]]:
    """One pytest run of the families on ``exporters``; per exporter (sum of durations, count)."""
    with tempfile.TemporaryDirectory(prefix="dmabuf-bench-") as d:
        junit = Path(d) / "junit.xml"
        argv = [sys.executable, "-m", "pytest", str(REPO / "cases"), "--target=qemu", "-q",
                "-p", "no:cacheprovider", "-m", FAMILIES, f"--junitxml={junit}",
                f"--reports-dir={d}/reports", *extra]
        for e in exporters:
            argv += ["--exporter", e]
        t0 = time.monotonic()
        r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
        wall = time.monotonic() - t0
        last = (r.stdout.strip().splitlines() or ["?"])[-1]
        print(f"  pytest: {last} ({wall:.1f} s)", flush=True)
        if not junit.exists():
            raise BenchSetupError(f"pytest wrote no JUnit file:\n{r.stdout[-2000:]}{r.stderr}")
        per: dict[str, tuple[float, int]] = {e: (0.0, 0) for e in exporters}
        for case in ET.parse(junit).iter("testcase"):
            name = case.get("name", "")
            if case.find("failure") is not None or case.find("error") is not None:
                print(f"  failed: {name}", flush=True)
            for e in exporters:
                if name.endswith(f"[{e}]") or f"[{e}-" in name or f"-{e}]" in name:
                    s, n = per[e]
                    per[e] = (s + float(case.get("time", 0)), n + 1)
        return wall, per


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exporter", action="append", default=[],
                    help="repeatable; default heap:system, heap:reserved, udmabuf")
    ap.add_argument("--repeat", type=int, default=3, help="selftest runs (best is kept)")
    ap.add_argument("--kernel-tree", help="unpacked kernel source (default: the suite's cache)")
    ap.add_argument("--compare", choices=("on", "off"), default="on",
                    help="pass --compare to pytest (the lockstep model check)")
    args = ap.parse_args()
    exporters = args.exporter or ["heap:system", "heap:reserved", "udmabuf"]
    try:
        bins = build_selftests(find_tree(args.kernel_tree))
    except BenchSetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    figures = {e: Figure(e) for e in exporters}
    target = QemuTarget(Guest(GuestConfig(kernel=ensure_kernel())))
    try:
        target.start()
        for e in exporters:
            figures[e].selftest_s, figures[e].selftest_note = selftest_figure(
                target, e, bins, args.repeat)
    finally:
        target.stop()
    wall, per = run_cases(exporters, [f"--compare={args.compare}"])
    for e, (s, n) in per.items():
        figures[e].cases_s, figures[e].cases_count = s, n

    print(f"\n{'exporter':<16} {'selftest':>10} {'cases':>10} {'#':>4} {'ratio':>8}  note")
    for f in figures.values():
        st = f"{f.selftest_s:.3f} s" if f.selftest_s is not None else "-"
        cs = f"{f.cases_s:.2f} s" if f.cases_s is not None else "-"
        ratio = (f"{f.cases_s / f.selftest_s:.1f}x" if f.selftest_s and f.cases_s is not None
                 else "-")
        print(f"{f.exporter:<16} {st:>10} {cs:>10} {f.cases_count:>4} {ratio:>8}  "
              f"{f.selftest_note} (goal <= 3x)")
    means = [f.cases_s / f.cases_count for f in figures.values() if f.cases_s and f.cases_count]
    print(f"pytest run total (boot, collection, {len(exporters)} exporters): {wall:.1f} s; "
          f"median time per case {statistics.median(means or [0.0]) * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
