"""Benchmarks of the QEMU target (printed, never asserted): issue 14's figures next to its goals.

    python bench/bench_qemu.py                 # the goals: boot, per-case overhead, warm job
    python bench/bench_qemu.py --scaling 1,2,4 # also the cases on 1, 2 and 4 guests
    python bench/bench_qemu.py --cold-build    # also a cold kernel build (own cache, minutes)
    python bench/bench_qemu.py --only boot     # one part: boot, overhead, job (comma-separated)
    python bench/bench_qemu.py --only none --ab ../worktree-of-HEAD   # boots, in turn
    python bench/bench_qemu.py --arch aarch64 [--page-size 16k] --only boot   # the arm64 guest

Goals (issue 14): boot to agent ready <= 2.5 s under TCG and >= 4x faster than
virtme-ng's TCG boot of the same kernel (bench/virtme_ng.py, when vng is
installed); per-case overhead <= 10 ms median over >= 100 cases; the warm main
job (the cases on 4 exporters, reports, browser check, verdict: tox -e qemu's
steps) <= 45 s.  Also printed: the op round trip (goal <= 2 ms) and the ctypes
bindings against a C loop in the guest (goal <= 2x).  Every figure depends on the
machine's load, printed first and last: measure on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
from typing import Any, Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # virtme_ng

from conformance.qemu.arch import get_arch  # noqa: E402
from conformance.qemu.boot import INIT_IN_REPO, Guest, precompile  # noqa: E402
from conformance.qemu.kernel import cache_root, ensure_kernel  # noqa: E402
from conformance.qemu.rootfs import ensure_root  # noqa: E402
from conformance.qemu.suite_guest import suite_guest_config  # noqa: E402
from conformance.targets.qemu import QemuTarget  # noqa: E402


def _row(what: str, value: str, goal: str = "") -> None:
    print(f"{what:<44} {value:>14}  {goal}", flush=True)


def bench_cold_build() -> None:
    """A cold build in a scratch cache: wall, CPU (less load-dependent) and objects."""
    import resource

    with tempfile.TemporaryDirectory(prefix="dmabuf-cold-") as d:
        os.environ["DMABUF_CONFORMANCE_CACHE"] = d
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        build = ensure_kernel()
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        del os.environ["DMABUF_CONFORMANCE_CACHE"]
        import json

        objects = json.loads((build.kdir / ".dmabuf-conformance-build.json").read_text()).get(
            "objects", "?")
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        _row("cold kernel build (unpack+config+bzImage)", f"{time.monotonic() - t0:.0f} s",
             "goal: no slower than 179 s")
        _row("  its CPU time, objects compiled", f"{cpu:.0f} s, {objects}")


def bench_virtme(image: Path, boot: float, runs: int) -> None:
    """virtme-ng's TCG boot of the same kernel image, and how many times ours is faster."""
    from virtme_ng import measure_virtme_boot

    took, how = measure_virtme_boot(image, runs)
    if took is None:
        print(f"  (virtme-ng not measured: {how})")
        return
    _row(f"virtme-ng boot to its command (median of {runs})", f"{took:.2f} s",
         f"ours {took / boot:.1f}x faster (goal >= 4x)")
    print(f"  ({how})")


def bench_guest(boots: int, pings: int, loops: int, arch: str = "x86_64",
                page_size: str = "4k", virtme: bool = True) -> None:
    build = ensure_kernel(arch=arch, page_size=page_size)
    stamp = build.kdir / ".dmabuf-conformance-build.json"
    if stamp.exists():
        import json

        _row(f"{arch} {page_size} kernel build recorded in the cache",
             f"{json.loads(stamp.read_text())['seconds']} s")
    if arch != platform.machine():
        # A foreign guest boots its own Debian root (made once, then cached).
        t0 = time.monotonic()
        ensure_root(arch)
        _row(f"{arch} guest root (cached after the first)", f"{time.monotonic() - t0:.1f} s")
    # The run's own guest: the probe loaded, the suite's kernel arguments.
    target = QemuTarget(Guest(suite_guest_config(build, arch=arch)))
    try:
        times = []
        for i in range(boots):
            if i == 0:
                target.start()
            else:
                target.restart()
            times.append(target.guest.last_boot_s)
        boot = statistics.median(times)
        _row(f"{arch} boot to agent ready (median of {boots})", f"{boot:.2f} s",
             f"goal <= 2.5 s; each: {', '.join(f'{t:.2f}' for t in times)}")
        _row("  of which the guest creating its LocalTarget",
             f"{target.guest.ready_info.get('startup_s', 0):.2f} s")
        if virtme and arch == platform.machine():
            bench_virtme(build.image, boot, boots)

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
        bench_run_steps(target)

        py = target.call("bench_ops", "heap:system", loops)
        c = _c_loop(target, loops, arch)
        for key, label in (("alloc_close_us", "allocate+close"),
                           ("sync_start_end_us", "SYNC start+end pair")):
            ratio = f"{py[key] / c[key]:.2f}x C" if c.get(key) else "n/a"
            _row(f"in guest, {label}: ctypes / C", f"{py[key]:.1f}/{c.get(key, 0):.1f} us",
                 f"{ratio} (goal <= 2x)")
    finally:
        target.stop()


def bench_run_steps(target: QemuTarget, cycles: int = 200) -> None:
    """An allocate/mmap/munmap/close cycle (LEAK-003's kind) one request per operation,
    then ``cycles`` of them in one ``Target.run_steps`` request."""
    from conformance.steps import Earlier, Step

    t0 = time.perf_counter()
    for _ in range(cycles):
        buf = target.allocate("heap:system", 4096)
        target.munmap(target.mmap(buf))
        target.close(buf)
    alone = (time.perf_counter() - t0) / cycles * 1e3
    steps: list[Step] = []
    for _ in range(cycles):
        at = len(steps)
        steps += [Step("allocate", ("heap:system", 4096)), Step("mmap", (Earlier(at),)),
                  Step("munmap", (Earlier(at + 1),)), Step("close", (Earlier(at),))]
    t0 = time.perf_counter()
    ran = target.run_steps(steps)
    batched = (time.perf_counter() - t0) / cycles * 1e3
    if ran.error is not None:
        raise SystemExit(f"run_steps: {ran.error}")
    _row("allocate/mmap/munmap/close, a request each", f"{alone:.2f} ms")
    _row(f"  the same in one run of steps ({cycles} cycles)", f"{batched:.2f} ms",
         f"{alone / batched:.1f}x fewer ms per cycle")


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


# The pytest processes of the job as tox -e qemu starts them: its environment has the
# [suite] extra, without labgrid, whose pytest plugin this environment may have (0.9 s of
# imports per process), and tox does not pass PYTHONDONTWRITEBYTECODE on, so pytest
# keeps its rewritten test modules (2 to 3 s per process here when it may not).
AS_TOX_QEMU = ("-p", "no:labgrid")


def _tox_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _timed(argv: Sequence[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    r = subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, env=_tox_env())
    return time.monotonic() - t0, r


def _last_line(r: subprocess.CompletedProcess[str]) -> str:
    """pytest's outcome line if there is one (warnings may follow it), else the last line."""
    lines = r.stdout.strip().splitlines() or r.stderr.strip().splitlines() or ["?"]
    outcome = [line for line in lines if " in " in line and ("passed" in line or "failed" in line)]
    return (outcome or lines)[-1][:90]


def bench_scaling(workers: Sequence[int]) -> None:
    """The cases alone (no reports, no browser) on 1, 2, 4 ... guests of this machine."""
    for n in workers:
        with tempfile.TemporaryDirectory(prefix="dmabuf-bench-") as d:
            took, r = _timed([sys.executable, "-m", "pytest", str(REPO / "cases"),
                              "--target=qemu", "-q", "-p", "no:cacheprovider", *AS_TOX_QEMU,
                              *(("-n", str(n)) if n > 1 else ("-n", "0")),
                              "--progress-every", "3600", f"--reports-dir={d}"])
        _row(f"the cases on {n} guest(s)", f"{took:.0f} s", _last_line(r))


def bench_warm_job(workers: int = 2) -> None:
    """tox -e qemu's steps, warm (kernel built), in a scratch reports dir, each timed."""
    with tempfile.TemporaryDirectory(prefix="dmabuf-job-") as d:
        reports, results, html = Path(d), Path(d) / "allure-results", Path(d) / "html"
        env_note = {"DMABUF_REPORT_HTML": str(html / "index.html"),
                    "DMABUF_REPORT_RESULTS": str(results)}
        os.environ.update(env_note)
        steps = [
            ("the cases, reports written", [sys.executable, "-m", "pytest", str(REPO / "cases"),
                                            "--target=qemu", "-n", str(workers), "-q",
                                            "-p", "no:cacheprovider", *AS_TOX_QEMU,
                                            f"--alluredir={results}",
                                            "--clean-alluredir", f"--reports-dir={reports}",
                                            "--progress-every", "3600"]),
            ("check-run", [sys.executable, "-m", "conformance.report", "check-run",
                           "--reports-dir", str(reports)]),
            ("HTML report (Allure 3)", [sys.executable, "-m", "conformance.report", "html",
                                        "--results", str(results), "--out", str(html)]),
            ("browser check of the report", [sys.executable, "-m", "pytest",
                                             str(REPO / "tests" / "test_report_browser.py"),
                                             "-k", "own", "-p", "no:cacheprovider", "-q",
                                             *AS_TOX_QEMU]),
            ("verdict", [sys.executable, "-m", "conformance.report", "verdict",
                         "--reports-dir", str(reports)]),
        ]
        total = 0.0
        for what, argv in steps:
            took, r = _timed(argv)
            total += took
            _row(f"  {what}", f"{took:.1f} s", _last_line(r))
        for key in env_note:
            del os.environ[key]
    _row(f"warm main job, -n {workers} (tox -e qemu's steps)", f"{total:.0f} s", "goal <= 45 s")


# -- per-case overhead (issue 14): what the suite adds to each case on one guest -------


def bench_ab(other: Path, rounds: int, arch: str = "x86_64", page_size: str = "4k") -> None:
    """Boot this checkout's guest and ``other``'s in turn, same kernel: a shared host's drift
    hits both alike, so the difference of the medians is the change's."""
    if not (other / INIT_IN_REPO).is_file():
        raise SystemExit(f"--ab: {other} is not a checkout of this project (no {INIT_IN_REPO})")
    build = ensure_kernel(arch=arch, page_size=page_size)
    base = suite_guest_config(build, arch=arch)
    variants = {"this checkout": base, str(other): dataclasses.replace(base, repo=other)}
    boots: dict[str, list[float]] = {k: [] for k in variants}
    made: dict[str, list[float]] = {k: [] for k in variants}
    for config in variants.values():
        precompile(config.repo)
    for _ in range(rounds):
        for name, config in variants.items():
            guest = Guest(config)
            try:
                guest.start()
                info = guest.wait_ready()
            finally:
                guest.stop()
            boots[name].append(guest.last_boot_s)
            made[name].append(float(info.get("startup_s", 0)))
    for name in variants:
        _row(f"A/B boot to ready, {name} (median of {rounds})",
             f"{statistics.median(boots[name]):.2f} s",
             f"LocalTarget {statistics.median(made[name]):.2f} s; each: "
             + ", ".join(f"{t:.2f}" for t in boots[name]))


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
                            "-n", "0", "-q", "-p", "no:cacheprovider", *AS_TOX_QEMU,
                            f"--timing-file={timing}", f"--reports-dir={d}/reports",
                            *pytest_args],
                           cwd=REPO, capture_output=True, text=True, env=_tox_env())
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


PARTS = ("boot", "overhead", "job")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _cpu_times() -> tuple[int, int]:
    """(stolen, wanted) jiffies of all CPUs from /proc/stat: wanted = busy + stolen."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: inside user/nice]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return steal, user + nice + system + irq + softirq + steal


@contextlib.contextmanager
def stolen(what: str) -> Iterator[None]:
    """After the block, the share of the CPU time it wanted that the hypervisor gave to others.

    A virtual machine's host is shared: the same bench moved from 6 s to 12 s boots
    within one hour at the same load, with half of the CPU time stolen.  Each figure
    is only comparable with figures of similar steal.
    """
    start = _cpu_times()
    yield
    steal, wanted = (b - a for a, b in zip(start, _cpu_times()))
    _row(f"  CPU time stolen by the hypervisor ({what})",
         f"{100 * steal / wanted:.0f} %" if wanted else "n/a", "of the CPU time wanted")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(PARTS),
                    help=f"the parts to run, comma-separated (default: {','.join(PARTS)}; "
                         "none: only --ab, --scaling or --cold-build)")
    ap.add_argument("--scaling", default="", metavar="N,N,...",
                    help="also the cases alone on each number of guests (e.g. 1,2,4)")
    ap.add_argument("--workers", type=int, default=2, help="guests of the warm job (default 2)")
    ap.add_argument("--cold-build", action="store_true")
    ap.add_argument("--no-virtme", action="store_true",
                    help="do not boot virtme-ng for the comparison")
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--pings", type=int, default=300)
    ap.add_argument("--loops", type=int, default=2000)
    ap.add_argument("--ab", type=Path, default=None, metavar="CHECKOUT",
                    help="also boot another checkout's guest in turn with this one's "
                         "(e.g. a `git worktree` of the last commit) and compare")
    ap.add_argument("--rounds", type=int, default=10, help="boots of each side with --ab")
    ap.add_argument("--arch", default="x86_64", help="guest architecture (x86_64, aarch64)")
    ap.add_argument("--page-size", default="4k", help="4k, or 16k with --arch aarch64")
    args = ap.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - set(PARTS) - {"none"}
    if unknown:
        ap.error(f"--only: unknown part(s) {', '.join(sorted(unknown))} "
                 f"(known: {', '.join(PARTS)})")
    try:
        scaling = [int(n) for n in args.scaling.split(",") if n.strip()]
    except ValueError:
        ap.error(f"--scaling wants numbers of guests like 1,2,4, not {args.scaling!r}")
    _row("load average at the start", _load())
    with stolen("the whole bench"):
        if args.cold_build:
            with stolen("cold build"):
                bench_cold_build()
        if "boot" in parts:
            with stolen("boot"):
                bench_guest(args.boots, args.pings, args.loops, args.arch, args.page_size,
                            virtme=not args.no_virtme)
        if "overhead" in parts:
            with stolen("overhead"):
                bench_case_overhead()
        if "job" in parts:
            with stolen("job"):
                bench_warm_job(args.workers)
        if args.ab is not None:
            with stolen("A/B"):
                bench_ab(args.ab.resolve(), args.rounds, args.arch, args.page_size)
        if scaling:
            with stolen("scaling"):
                bench_scaling(scaling)
        _row("load average at the end", _load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
