"""``python -m conformance.lava run``: the suite as a LAVA job on the suite's test kernel.

Boots the test kernel with the DUT initramfs under ``lava-run`` (no LAVA
server), runs ``lava/conformance.yaml`` on it, and prints the results LAVA
recorded per set.  Exit 0 when LAVA recorded one result per case of the run's
summary (whatever the cases did), 1 when not, 2 when the job could not run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from conformance.errors import SetupError
from conformance.lava.install import find_lava
from conformance.lava.job import JobParams
from conformance.lava.run import run_job
from conformance.report.files import SUMMARY_JSON
from conformance.report.lava import signals
from conformance.summary import Summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.lava", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the LAVA job and print what LAVA recorded")
    run.add_argument("--marker", default=JobParams.marker,
                     help="pytest -m on the DUT ('' for every case; default: %(default)r)")
    run.add_argument("--pytest-args", default="", help="more pytest arguments, space-separated")
    run.add_argument("--waivers", default="", help="a waiver file (a path on this host)")
    run.add_argument("--job-dir", type=Path, default=None,
                     help="where the job, device, log and reports go "
                          "(default: a new directory under the LAVA cache)")
    run.add_argument("--timeout", type=float, default=1800.0, metavar="S")
    args = ap.parse_args(argv)
    try:
        install = find_lava()
        job_dir = args.job_dir or install.home / "jobs" / str(int(time.time()))
        params = JobParams(marker=args.marker, pytest_args=args.pytest_args,
                           waivers=str(Path(args.waivers).resolve()) if args.waivers else "")
        done = run_job(install, params, job_dir, timeout=args.timeout)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"lava-run exit status {done.returncode} in {done.seconds:.0f} s; log: {done.log}")
    print("LAVA's own results: " + ", ".join(f"{k}={v}" for k, v in
                                             sorted(done.lava_results().items())))
    recorded = Counter((r.set, r.result) for r in done.cases())
    for (set_name, result), n in sorted(recorded.items()):
        print(f"  {set_name}: {n} {result}")
    summary_path = done.reports_dir / SUMMARY_JSON
    if not summary_path.is_file():
        print(f"error: the DUT wrote no {SUMMARY_JSON} (see {done.log})", file=sys.stderr)
        return 2
    expected = Counter((s.set, s.result) for s in signals(Summary.load(summary_path)))
    if expected != recorded:
        print(f"LAVA recorded {sum(recorded.values())} results, the summary has "
              f"{sum(expected.values())}: they differ", file=sys.stderr)
        return 1
    print(f"LAVA recorded every one of the summary's {sum(expected.values())} results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
