"""The certification summary as JUnit XML: one testsuite per exporter, one testcase per case.

Counts follow pytest's own ``--junitxml``: a waived failure (pytest's
``xfailed``) is a ``<skipped type="waived">``, so CI dashboards see the same
numbers as the terminal.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conformance.report.verdict import comparison_counts, level_of, run_problem, verdict_for
from conformance.report.waivers import split_exporter_key
from conformance.summary import Summary


def _run_properties(summary: Summary) -> list[tuple[str, str]]:
    run = summary.run
    props = [
        ("run_id", run.id),
        ("run_started", run.started),
        ("run_ended", run.ended),
        ("run_exit_status", "" if run.exit_status is None else str(run.exit_status)),
        ("run_command", run.command),
        ("run_complete", str(run.complete).lower()),
        ("run_problem", run_problem(summary)),
        ("kernel_build", run.kernel_build),
    ]
    for name, inst in sorted(summary.instruments().items()):
        state = "present" if inst.get("present") else "missing"
        detail = str(inst.get("detail", ""))
        props.append((f"instrument_{name}", f"{state}: {detail}" if detail else state))
    return props


def render_junit(summary: Summary) -> str:
    root = ET.Element("testsuites", name="dma-buf conformance")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for exporter in summary.all_exporters():
        results = summary.exporters.get(exporter, {})
        verdict = verdict_for(summary, exporter)
        suite = ET.SubElement(root, "testsuite", name=exporter)
        # a farm's run files results as exporter@board: that board's kernel and place
        board = summary.boards.get(split_exporter_key(exporter)[1], {})
        props = ET.SubElement(suite, "properties")
        cmp = comparison_counts(summary, exporter)
        for name, value in (
            ("verdict", verdict.verdict),
            ("verdict_reason", verdict.why),
            ("incomplete_families", ", ".join(verdict.incomplete_families)),
            ("target", summary.target),
            ("kernel", board.get("kernel") or summary.kernel),
            *((f"board.{k}", str(v)) for k, v in sorted(board.items())
              if k == "board" or k.startswith("labgrid_")),
            *_run_properties(summary),
            ("compared_fully", str(cmp["fully"])),
            ("compared_partially", str(cmp["partially"])),
            ("not_compared", str(cmp["not compared"])),
        ):
            ET.SubElement(props, "property", name=name, value=value)
        tally = dict.fromkeys(totals, 0)
        for case_id in sorted(results):
            outcome = results[case_id]
            meta = summary.cases.get(case_id)
            family = meta.family if meta and meta.family else "case"
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{exporter}.{level_of(summary, case_id)}.{family}",
                name=case_id,
            )
            message = summary.messages.get(exporter, {}).get(case_id, "")
            first = message.splitlines()[0] if message else outcome
            tally["tests"] += 1
            waiver = summary.waived.get(exporter, {}).get(case_id)
            if outcome == "failed" and waiver is not None:
                tally["skipped"] += 1
                el = ET.SubElement(
                    case, "skipped", type="waived",
                    message=f"waived (#{waiver['waiver']}): {waiver['reason']}",
                )
                el.text = message
            elif outcome == "failed":
                tally["failures"] += 1
                ET.SubElement(case, "failure", message=first).text = message
            elif outcome == "error":
                tally["errors"] += 1
                ET.SubElement(case, "error", message=first).text = message
            elif outcome == "skipped":
                tally["skipped"] += 1
                ET.SubElement(case, "skipped", message=first)
        for key, n in tally.items():
            suite.set(key, str(n))
            totals[key] += n
    problem = run_problem(summary)
    if problem and not summary.all_exporters():
        # No exporter to hang the run on: CI still sees an error saying why.
        suite = ET.SubElement(root, "testsuite", name="run", tests="1", errors="1",
                              failures="0", skipped="0")
        props = ET.SubElement(suite, "properties")
        for name, value in _run_properties(summary):
            ET.SubElement(props, "property", name=name, value=value)
        case = ET.SubElement(suite, "testcase", classname="run", name="run")
        ET.SubElement(case, "error", message=problem.splitlines()[0]).text = problem
        totals["tests"] += 1
        totals["errors"] += 1
    for key, n in totals.items():
        root.set(key, str(n))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
