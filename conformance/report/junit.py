"""The certification summary as JUnit XML: one testsuite per exporter, one testcase per case.

Counts follow pytest's own ``--junitxml``: a waived failure (pytest's
``xfailed``) is a ``<skipped type="waived">``, so CI dashboards see the same
numbers as the terminal.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conformance.report.verdict import level_of, verdict_for
from conformance.summary import Summary


def render_junit(summary: Summary) -> str:
    root = ET.Element("testsuites", name="dma-buf conformance")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for exporter in sorted(summary.exporters):
        results = summary.exporters[exporter]
        verdict = verdict_for(summary, exporter)
        suite = ET.SubElement(root, "testsuite", name=exporter)
        props = ET.SubElement(suite, "properties")
        for name, value in (
            ("verdict", verdict.verdict),
            ("verdict_reason", verdict.why),
            ("target", summary.target),
            ("kernel", summary.kernel),
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
    for key, n in totals.items():
        root.set(key, str(n))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
