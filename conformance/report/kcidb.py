"""The certification summary as KCIDB I/O data (schema v5), for KernelCI's common database.

One checkout and one build per run (ids from the run id: the suite does not
know the kernel's git commit, only the booted image's and its config's
hashes, which the build carries in ``config_name`` and ``misc``), and one
test per case result of each exporter, at the path ``kcidb_paths.kcidb_path``
gives (``dmabuf_conformance.heap_system.CMO-002.TO__DEVICE``).  A farm's run
(exporters ``heap:system@board``) has a build per board too, with that board's
kernel, and each board's tests belong to it.

Statuses: ``passed`` PASS, ``failed`` FAIL, ``skipped`` SKIP (the skip's
kind, "not applicable" or "not checked", is in ``misc.skip`` and the reason in
``log_excerpt``), ``error`` ERROR.  A waived failure stays FAIL.  Schema v5
dropped the test's ``waived`` field (kcidb-io 141 rejects it; v4 had it), and
its own v4 to v5 upgrade turns ``waived: true`` into an incident of a
"waived" issue.  So does this module: each waiver a failure matched is an
issue (its reason the comment) and each waived test an incident of it; the
test's ``misc`` also says ``"waived": true`` with the waiver, so a reader of
the test alone sees it too.

Cases deselected (``-m``/``-k``) or not planned have no result and no test,
as in JUnit: the counts equal pytest's.  A case that is not applicable to an
exporter ran and skipped, so it is a SKIP.  A run that judged no exporter is
one ERROR test at the path ``dmabuf_conformance`` saying why, as JUnit's
"run" testcase.

Stdlib only (the suite runs on boards); ``kcidb-io`` validates it in the
project's tests.
"""

from __future__ import annotations

import re
from typing import Any

from conformance.report.kcidb_paths import ROOT, kcidb_path
from conformance.report.verdict import level_of, run_problem, verdict_for
from conformance.report.waivers import split_exporter_key
from conformance.skips import is_not_applicable
from conformance.summary import Summary

ORIGIN = "dmabuf_conformance"
# Only fields v5.0 has, so a KCIDB of any v5 accepts it; kcidb-io upgrades it on load.
SCHEMA_VERSION = {"major": 5, "minor": 0}
STATUS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "error": "ERROR"}
LOG_LIMIT = 16384  # the schema's maxLength of log_excerpt

# KCIDB names architectures as the kernel's ARCH does; targets report uname -m.
_ARCH = {"aarch64": "arm64", "armv7l": "arm", "ppc64le": "powerpc", "riscv64": "riscv"}


def render_kcidb(summary: Summary) -> dict[str, Any]:
    run_id = summary.run.id or "unknown-run"
    checkout_id = f"{ORIGIN}:{run_id}"
    build_id = f"{ORIGIN}:{run_id}"
    tests: list[dict[str, Any]] = []
    issues: dict[int, dict[str, Any]] = {}
    incidents: list[dict[str, Any]] = []
    builds = [_build(summary, build_id, checkout_id)]
    for board in sorted(summary.boards):
        builds.append(_board_build(summary, board, f"{build_id}:{board}", checkout_id))
    for exporter in summary.all_exporters():
        verdict = verdict_for(summary, exporter).verdict
        board = split_exporter_key(exporter)[1]
        on = f"{build_id}:{board}" if board in summary.boards else build_id
        for case_id, outcome in sorted(summary.exporters.get(exporter, {}).items()):
            test = _test(summary, exporter, case_id, outcome, on, run_id)
            test["misc"]["verdict"] = verdict
            tests.append(test)
            waiver = summary.waived.get(exporter, {}).get(case_id)
            if outcome == "failed" and waiver is not None:
                issue = issues.setdefault(int(waiver["waiver"]), _issue(run_id, waiver))
                test["misc"].update(waived=True, waiver=waiver["waiver"],
                                    waiver_reason=str(waiver["reason"]))
                incidents.append(_incident(issue, test))
    problem = run_problem(summary)
    if problem and not summary.all_exporters():
        tests.append(_clean({
            "id": f"{ORIGIN}:{run_id}:run", "origin": ORIGIN, "build_id": build_id,
            "path": ROOT, "status": "ERROR", "comment": "the run judged no exporter",
            "log_excerpt": problem, "start_time": summary.run.started,
        }))
    data: dict[str, Any] = {
        "version": dict(SCHEMA_VERSION),
        "checkouts": [_checkout(summary, checkout_id)],
        "builds": builds,
        "tests": tests,
    }
    if issues:
        data["issues"] = [issues[n] for n in sorted(issues)]
        data["incidents"] = incidents
    return data


def _checkout(summary: Summary, checkout_id: str) -> dict[str, Any]:
    run = summary.run
    return _clean({
        "id": checkout_id,
        "origin": ORIGIN,
        "comment": summary.kernel,
        "start_time": run.started,
        "misc": {"kernel": summary.kernel, "target": summary.target, "run_id": run.id,
                 "run_ended": run.ended, "run_exit_status": run.exit_status,
                 "run_command": run.command, "run_complete": run.complete,
                 "run_problem": run_problem(summary)},
    })


def _build(summary: Summary, build_id: str, checkout_id: str) -> dict[str, Any]:
    extra = dict(summary.target_info.get("extra", {}))
    config_hash = str(extra.get("kernel_config_hash", ""))
    machine = str(summary.target_info.get("machine", ""))
    arch = _ARCH.get(machine, machine)
    return _clean({
        "id": build_id,
        "origin": ORIGIN,
        "checkout_id": checkout_id,
        "comment": f"kernel {summary.kernel}" if summary.kernel else "",
        "architecture": arch if re.fullmatch(r"[a-z0-9_]+", arch) else "",
        "config_name": config_hash,
        "misc": {
            "kernel_build": summary.run.kernel_build,
            "kernel_config_hash": config_hash,
            "target": summary.target,
            "page_size": summary.target_info.get("page_size"),
            "instruments": {name: bool(inst.get("present"))
                            for name, inst in sorted(summary.instruments().items())},
        },
    })


def _board_build(summary: Summary, board: str, build_id: str,
                 checkout_id: str) -> dict[str, Any]:
    facts = summary.boards[board]
    config_hash = str(facts.get("kernel_config_hash", ""))
    kernel = str(facts.get("kernel", ""))
    return _clean({
        "id": build_id,
        "origin": ORIGIN,
        "checkout_id": checkout_id,
        "comment": f"board {board}, kernel {kernel}",
        "config_name": config_hash,
        "misc": {"board": board, **facts},
    })


def _test(summary: Summary, exporter: str, case_id: str, outcome: str, build_id: str,
          run_id: str) -> dict[str, Any]:
    meta = summary.cases.get(case_id)
    message = summary.messages.get(exporter, {}).get(case_id, "")
    misc: dict[str, Any] = {
        "exporter": exporter,
        "case": case_id,
        "outcome": outcome,
        "level": level_of(summary, case_id),
        "family": meta.family if meta else "",
    }
    if outcome == "skipped":
        misc["skip"] = "not applicable" if is_not_applicable(message) else "not checked"
    return _clean({
        "id": f"{ORIGIN}:{run_id}:{exporter}:{case_id}",
        "origin": ORIGIN,
        "build_id": build_id,
        "path": kcidb_path(exporter, case_id),
        "status": STATUS[outcome],
        "comment": meta.title if meta else "",
        "log_excerpt": message,
        "start_time": summary.run.started,
        "environment": {"comment": f"{summary.target} target, kernel {summary.kernel}"},
        "misc": misc,
    })


def _issue(run_id: str, waiver: dict[str, Any]) -> dict[str, Any]:
    number = int(waiver["waiver"])
    return {
        "id": f"{ORIGIN}:{run_id}:waiver-{number}",
        "origin": ORIGIN,
        "version": 1,
        "comment": _text(f"waived (#{number}): {waiver['reason']}"),
        "misc": {"waiver": number, "reason": str(waiver["reason"])},
    }


def _incident(issue: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{issue['id']}:{test['id'].split(':', 2)[2]}",
        "origin": ORIGIN,
        "issue_id": issue["id"],
        "issue_version": issue["version"],
        "test_id": test["id"],
        "present": True,
        "comment": "a waived failure",
    }


def _text(value: str, limit: int = LOG_LIMIT) -> str:
    # The schema forbids NUL in every text field; a message carries raw kernel output.
    return value.replace("\0", "\\0")[:limit]


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop empty optional fields (the schema rejects "" for a date-time) and NULs."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if value in ("", None) and key not in ("id", "origin"):
            continue
        out[key] = _text(value) if isinstance(value, str) else value
    return out
