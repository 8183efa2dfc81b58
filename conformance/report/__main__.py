"""``python -m conformance.report``: regenerate the reports of a finished run.

* ``summary``: Markdown and JUnit XML from ``conformance-summary.json`` (for an
  archived run; pytest writes all three itself at the end of a run).
* ``html``: the Allure HTML report from the raw results, offline.
* ``verdict``: the verdict line per exporter; exits 1 when one is not
  conformant, so a CI job can gate on the certification verdict.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.errors import SetupError
from conformance.report.html import generate_html
from conformance.report.junit import render_junit
from conformance.report.markdown import render_markdown
from conformance.report.verdict import verdicts
from conformance.summary import Summary


def _load_summary(reports_dir: Path) -> Summary:
    path = reports_dir / "conformance-summary.json"
    if not path.is_file():
        raise SetupError(f"{path} does not exist: run the cases first")
    return Summary.load(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summary", help="Markdown and JUnit XML from conformance-summary.json")
    s.add_argument("--reports-dir", type=Path, default=Path("reports"))
    h = sub.add_parser("html", help="the Allure HTML report from raw results")
    h.add_argument("--results", type=Path, default=Path("reports/allure-results"))
    h.add_argument("--out", type=Path, default=Path("reports/html"))
    g = sub.add_parser("verdict", help="print the verdicts; exit 1 if any is not conformant")
    g.add_argument("--reports-dir", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    try:
        if args.command == "verdict":
            lines = verdicts(_load_summary(args.reports_dir))
            for v in lines:
                print(v.line())
            return 1 if any(v.verdict == "not conformant" for v in lines) else 0
        if args.command == "summary":
            summary = _load_summary(args.reports_dir)
            (args.reports_dir / "conformance-summary.md").write_text(render_markdown(summary))
            (args.reports_dir / "junit-conformance.xml").write_text(render_junit(summary))
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
