"""``python -m conformance.report``: judge and regenerate the reports of a finished run.

* ``verdict``: the verdict line per exporter of the last run in --reports-dir.
  Exit 0: every exporter conformant (waivers allowed); 1: one is not
  conformant; 2: no valid verdict (the run did not complete, or an exporter is
  incomplete or in error and none is not conformant), with "error: <why>".
* ``check-run``: exit 2 with "error: <why>" unless the last run completed
  (``tox -e qemu`` stops there before building reports of a run that never was).
* ``clean``: remove the summaries of the last run (a job does this before a run,
  so that no verdict outlives its run even if pytest refuses its command line).
* ``summary``: Markdown, JUnit XML, KCIDB JSON and KTAP from
  ``conformance-summary.json`` (for an archived run; pytest writes them all
  itself at the end of a run).
* ``html``: the Allure HTML report from the raw results, offline.
* ``lava``: one ``<set> <case> <result>`` line per case, for ``lava-test-case``
  (``conformance/report/lava.py``; the test definition is ``lava/conformance.yaml``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.errors import SetupError
from conformance.report.files import SUMMARY_JSON, remove_summaries, rendered_formats
from conformance.report.html import generate_html
from conformance.report.lava import LavaNameError, render_lava
from conformance.report.verdict import exit_status, run_problem, verdicts
from conformance.summary import Summary


class NoValidVerdict(SetupError):
    """The reports directory holds no summary of a complete run."""


def _load_summary(reports_dir: Path) -> Summary:
    path = reports_dir / SUMMARY_JSON
    if not path.is_file():
        raise NoValidVerdict(f"{path} does not exist: run the cases first")
    try:
        return Summary.load(path)
    except (ValueError, TypeError, KeyError) as exc:
        raise NoValidVerdict(f"{path} is not a conformance summary: {exc}") from None


def _complete_run(reports_dir: Path) -> Summary:
    summary = _load_summary(reports_dir)
    problem = run_problem(summary)
    if problem:
        raise NoValidVerdict(problem)
    return summary


def _verdict(reports_dir: Path) -> int:
    judged = verdicts(_complete_run(reports_dir))
    for v in judged:
        print(v.line())
    status = exit_status(judged)
    if status == 2:
        open_ones = [v.exporter for v in judged if v.verdict in ("incomplete", "error")]
        print(f"error: no valid verdict: {', '.join(open_ones)} not judged in full",
              file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, what in (
        ("verdict", "print the verdicts; exit 0 conformant, 1 not conformant, 2 no valid verdict"),
        ("check-run", "exit 2 with the reason unless the last run completed"),
        ("clean", "remove the summaries of the last run"),
        ("summary", "Markdown, JUnit XML, KCIDB JSON and KTAP from conformance-summary.json"),
        ("lava", "the results as LAVA signal lines, <set> <case> <pass|fail|skip|unknown>"),
    ):
        sub.add_parser(name, help=what).add_argument(
            "--reports-dir", type=Path, default=Path("reports")
        )
    h = sub.add_parser("html", help="the Allure HTML report from raw results")
    h.add_argument("--results", type=Path, default=Path("reports/allure-results"))
    h.add_argument("--out", type=Path, default=Path("reports/html"))
    args = parser.parse_args(argv)
    try:
        if args.command == "verdict":
            return _verdict(args.reports_dir)
        if args.command == "clean":
            for path in remove_summaries(args.reports_dir):
                print(f"removed: {path}")
        elif args.command == "check-run":
            summary = _complete_run(args.reports_dir)
            print(f"run {summary.run.id} completed (pytest exit status {summary.run.exit_status})")
        elif args.command == "lava":
            summary = _load_summary(args.reports_dir)
            try:
                sys.stdout.write(render_lava(summary))
            except LavaNameError as exc:
                raise SetupError(str(exc)) from None
            problem = run_problem(summary)
            if problem:
                print(f"note: {problem}", file=sys.stderr)
        elif args.command == "summary":
            summary = _load_summary(args.reports_dir)
            for name, text in rendered_formats(summary):
                (args.reports_dir / name).write_text(text, encoding="utf-8")
            problem = run_problem(summary)
            if problem:
                print(f"note: {problem}", file=sys.stderr)
            for v in verdicts(summary):
                print(v.line())
        else:
            print(f"written: {generate_html(args.results, args.out)}")
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
