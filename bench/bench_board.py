"""Benchmarks of the remote (ssh) target against a QEMU board stand-in (printed, never asserted).

    python bench/bench_board.py               # connect, round trip, per-case cost
    python bench/bench_board.py --cases "sync or uapi"   # the case subset timed per case

Figures: boot of the stand-in to its first ssh login; ssh connect to agent
ready (the bundle streamed into the board's python3); the median op round trip
over ssh and over the qemu target's virtio-serial port; the median time per
case (pytest's own per-test duration, from its JUnit XML) on both targets.
Other load on the machine shows in every figure: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from conformance.probe.build import build_probe_module  # noqa: E402
from conformance.qemu.kernel import ensure_kernel  # noqa: E402
from conformance.qemu.ssh_standin import SshStandin  # noqa: E402
from conformance.remote.board import BoardSpec, BoardTarget, ssh_argv  # noqa: E402
from conformance.remote.link import PipeLink  # noqa: E402


def _row(what: str, value: str, goal: str = "") -> None:
    print(f"{what:<48} {value:>14}  {goal}", flush=True)


def _median_ms(func, n: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        func()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _case_times(reports: Path, args: list[str], cases: str) -> tuple[float, int, float]:
    """(median seconds per case, cases run, wall seconds) of one pytest run."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest", "cases", "-p", "no:cacheprovider", "-q",
                    f"--reports-dir={reports}", f"--junitxml={reports / 'times.xml'}",
                    "--exporter", "heap:system", "-m", cases, *args],
                   cwd=REPO, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t0
    tree = ET.parse(reports / "times.xml")  # pytest's own, with each test's duration
    times = [float(tc.get("time", 0)) for tc in tree.iter("testcase")
             if tc.find("skipped") is None]
    return (statistics.median(times) if times else 0.0), len(times), wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--cases", default="sync or uapi or negative_kmap_cnt",
                    help="the -m expression of the cases timed on both targets")
    args = ap.parse_args()
    build = ensure_kernel()
    probe = build_probe_module(build.kdir)
    with SshStandin(build) as standin, tempfile.TemporaryDirectory() as tmp:
        _row("stand-in: QEMU start to first ssh login", f"{standin.ready_s:.2f} s")
        options = ["StrictHostKeyChecking=yes", f"UserKnownHostsFile={standin.known_hosts}",
                   "LogLevel=ERROR"]
        argv = ssh_argv(BoardSpec.parse(standin.board), identity=standin.identity,
                        options=options)
        target = BoardTarget(PipeLink(argv, Path(tmp) / "console.log"), probe_ko=probe)
        t0 = time.monotonic()
        target.start()
        _row("ssh connect to agent ready, probe loaded", f"{time.monotonic() - t0:.2f} s")
        _row("  of which the agent's own start on the board",
             f"{target.pipe.ready_info.get('startup_s', 0):.2f} s")
        _row("op round trip over ssh, ping (median)",
             f"{_median_ms(lambda: target.call('ping'), args.pings):.2f} ms")
        buf = target.allocate("heap:system", 4096)
        _row("op round trip over ssh, buffer_size (median)",
             f"{_median_ms(lambda: target.buffer_size(buf), args.pings):.2f} ms")
        target.stop()

        board_args = ["--target=ssh", "--board", standin.board, "--ssh-identity",
                      str(standin.identity), "--probe-ko", str(probe),
                      *[a for o in options for a in ("--ssh-option", o)]]
        ssh_case, n, ssh_wall = _case_times(Path(tmp) / "ssh", board_args, args.cases)
        _row(f"per case over ssh (median of {n})", f"{ssh_case * 1e3:.0f} ms",
             f"whole run {ssh_wall:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        qemu_case, n, qemu_wall = _case_times(Path(tmp), ["--target=qemu", "-p", "no:xdist"],
                                              args.cases)
        _row(f"per case on the qemu target (median of {n})", f"{qemu_case * 1e3:.0f} ms",
             f"whole run {qemu_wall:.0f} s (guest boot included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
