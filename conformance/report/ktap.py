"""The certification summary as KTAP v1 (Documentation/dev-tools/ktap.rst) for KTAP tools.

One suite per exporter (its name the exporter's), one test per case result
(its name the case id, ``CMO-002[TO_DEVICE]``), in the order JUnit uses::

    KTAP version 1
    1..2
        KTAP version 1
        # Subtest: heap:system
        1..3
        ok 1 ALLOC-001
        # <each line of the failure message>
        not ok 2 CMO-002[TO_DEVICE]
        ok 3 UDMABUF-001 # SKIP not applicable: contract binds udmabuf exporters, not heap
        # verdict: not conformant (...)
    not ok 1 heap:system

Results: ``passed`` is ``ok``, ``failed`` ``not ok``, ``skipped``
``ok ... # SKIP <reason>``, ``error`` ``not ok ... # ERROR <first line>``.
A waived failure is ``not ok ... # TODO waived (#<n>): <reason>``: never
``ok``.  ktap.rst lists TODO ("not expected to pass at the moment ... known to
be broken") as an accepted directive, which is what a waiver says; XFAIL is
kselftest's ``ok ... # XFAIL``, a pass.  The kernel's kunit_parser.py (6.1
and 6.12) acts only on SKIP, so it counts a waived failure, like an error,
as failed; a TAP consumer that knows TODO does not count it as a failure.
Failure and error messages are ``#`` diagnostic lines before the result line,
where kunit_parser puts them in that test's log.

Cases deselected (``-m``/``-k``) or not planned have no result and no test
line, as in JUnit, so the counts equal pytest's; an exporter without any
result gets a top-level diagnostic line instead of an empty suite, which
kunit_parser would count as a skipped test.  A run that judged no exporter
is one ``not ok 1 run # ERROR <why>``.  A suite is ``not ok`` when a case
failed unwaived or is in error, ``ok ... # SKIP`` when every case skipped;
its verdict is a diagnostic line (placed after the cases: 6.1's parser
takes no diagnostic between a suite's header and its plan).
"""

from __future__ import annotations

import re

from conformance.report.verdict import run_problem, verdict_for
from conformance.summary import Summary

INDENT = "    "

# kunit_parser stops reading at these kernel console phrases wherever they are in a
# line (KTAP_END); a message quoting the console gets a second space in them.
_CONSOLE_END = re.compile(r"(List of all|Kernel panic -|reboot: System) ")


def render_ktap(summary: Summary) -> str:
    ran = [e for e in summary.all_exporters() if summary.exporters.get(e)]
    lines = ["KTAP version 1"]
    lines += _diagnostics(f"dmabuf-conformance run {summary.run.id or '(no run record)'}: "
                          f"target {summary.target or '?'}, kernel {summary.kernel or '?'}")
    problem = run_problem(summary)
    if problem and summary.all_exporters():
        lines += _diagnostics(f"no valid verdict: {problem}")
    for exporter in summary.all_exporters():
        if exporter not in ran:
            lines += _diagnostics(f"{exporter}: no case ran (every one deselected)")
    if problem and not summary.all_exporters():
        lines += ["1..1", *_diagnostics(problem), f"not ok 1 run # ERROR {_line(problem)}"]
        return "\n".join(lines) + "\n"
    lines.append(f"1..{len(ran)}")
    for number, exporter in enumerate(ran, 1):
        lines += _suite(summary, exporter, number)
    return "\n".join(lines) + "\n"


def _suite(summary: Summary, exporter: str, number: int) -> list[str]:
    results = summary.exporters[exporter]
    name = _name(exporter)
    body = ["KTAP version 1", f"# Subtest: {name}", f"1..{len(results)}"]
    failing = False
    for index, case_id in enumerate(sorted(results), 1):
        outcome = results[case_id]
        message = summary.messages.get(exporter, {}).get(case_id, "")
        waiver = summary.waived.get(exporter, {}).get(case_id)
        case = f"{index} {_name(case_id)}"
        if outcome == "passed":
            body.append(f"ok {case}")
        elif outcome == "skipped":
            body.append(f"ok {case} # SKIP {_line(message)}".rstrip())
        elif outcome == "failed" and waiver is not None:
            body += _diagnostics(message)
            body.append(f"not ok {case} # TODO waived (#{waiver['waiver']}): "
                        f"{_line(str(waiver['reason']))}")
        else:
            failing = True
            body += _diagnostics(message)
            body.append(f"not ok {case}" + (f" # ERROR {_line(message)}".rstrip()
                                            if outcome == "error" else ""))
    verdict = verdict_for(summary, exporter)
    body += _diagnostics(f"verdict: {verdict.verdict} ({verdict.why})")
    if failing:
        result = f"not ok {number} {name}"
    elif all(o == "skipped" for o in results.values()):
        result = f"ok {number} {name} # SKIP every case skipped"
    else:
        result = f"ok {number} {name}"
    return [INDENT + line for line in body] + [result]


def _name(text: str) -> str:
    # ktap.rst: a description is any characters but "#" and a newline.
    return " ".join(text.replace("#", "_").split())


def _line(text: str) -> str:
    lines = text.strip().splitlines()
    return _CONSOLE_END.sub(r"\1  ", " ".join(lines[0].split())) if lines else ""


def _diagnostics(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        # "# Subtest:" would open a suite in kunit_parser; an extra space keeps it a comment.
        line = _CONSOLE_END.sub(r"\1  ", line.rstrip().replace("\0", "\\0"))
        out.append(("#  " if line.lstrip().startswith("Subtest:") else "# ") + line)
    return out
