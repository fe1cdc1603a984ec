"""The reports of a conformance run: JSON (one object per case, and a summary), JUnit XML
(one testcase per case, for CI systems) and a readable table (protocols/conformance.md §5)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

from xlink.conformance.model import Result, Verdict

__all__ = ["REPORT_VERSION", "json_report", "junit_report", "summary", "table_report"]

REPORT_VERSION: Final = 1


def summary(results: Sequence[Result], *, strict: bool) -> dict[str, Any]:
    """Counts by verdict, and whether the run passes (no FAILED; under ``strict`` no
    NON-STRICT either)."""
    counts = Counter(r.verdict.value for r in results)
    bad = counts[Verdict.FAILED.value] + (counts[Verdict.NON_STRICT.value] if strict else 0)
    return {
        "cases": len(results),
        "verdicts": {v.value: counts[v.value] for v in Verdict},
        "strict": strict,
        "passed": bad == 0,
    }


def _case(result: Result) -> dict[str, Any]:
    case, seen, outcome = result.case, result.observation, result.outcome
    return {
        "tcId": case.tc_id,
        "id": case.id,
        "section": case.section,
        "requirement": case.requirement,
        "flags": list(case.flags),
        "vector": case.vector,
        "role": result.role,
        "expected": [c.name for c in case.expect.abort] or None,
        "verdict": result.verdict.value,
        "reason": result.reason,
        "reported": None if outcome is None else {
            "outcome": outcome.outcome, "code": outcome.code, "released": outcome.released,
            "stored": outcome.stored, "refused": outcome.refused,
        },
        "abort_on_wire": None if seen.peer_abort is None else seen.peer_abort.name,
        "seconds": round(seen.elapsed, 3),
        "notes": list(seen.notes),
    }  # fmt: skip


def json_report(results: Sequence[Result], *, strict: bool, agent: str) -> str:
    """The JSON report: the agent's address and role, the summary and every case."""
    role = results[0].role if results else None
    doc = {
        "report_version": REPORT_VERSION,
        "agent": agent,
        "role": role,
        "summary": summary(results, strict=strict),
        "cases": [_case(r) for r in results],
    }
    return json.dumps(doc, indent=2) + "\n"


def junit_report(results: Sequence[Result], *, strict: bool) -> str:
    """JUnit XML: one testsuite per role, one testcase per case (classname: its section);
    FAILED (and NON-STRICT under ``strict``) is a failure, UNIMPLEMENTED a skip."""
    root = ET.Element("testsuites", name="xlink conformance")
    for role in sorted({r.role for r in results}):
        mine = [r for r in results if r.role == role]
        failing = {Verdict.FAILED, Verdict.NON_STRICT} if strict else {Verdict.FAILED}
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"xlink conformance ({role})",
            tests=str(len(mine)),
            failures=str(sum(r.verdict in failing for r in mine)),
            skipped=str(sum(r.verdict is Verdict.UNIMPLEMENTED for r in mine)),
            time=f"{sum(r.observation.elapsed for r in mine):.3f}",
        )
        for r in mine:
            tc = ET.SubElement(
                suite,
                "testcase",
                name=f"{r.case.tc_id:03d} {r.case.id}",
                classname=r.case.section,
                time=f"{r.observation.elapsed:.3f}",
            )
            if r.verdict in failing:
                failure = ET.SubElement(tc, "failure", message=r.reason, type=r.verdict.value)
                failure.text = r.case.requirement
            elif r.verdict is Verdict.UNIMPLEMENTED:
                ET.SubElement(tc, "skipped", message=r.reason)
            ET.SubElement(tc, "system-out").text = f"{r.verdict.value}: {r.reason}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def table_report(results: Sequence[Result], *, strict: bool, failures_only: bool = False) -> str:
    """A plain-text table, one line per case (only the failing ones with ``failures_only``),
    then the summary."""
    rows = [r for r in results if not failures_only or r.verdict is not Verdict.OK]
    width = max((len(r.case.id) for r in rows), default=10)
    lines = [f"{'tcId':>4}  {'case':<{width}}  {'verdict':<13}  reason"]
    for r in rows:
        lines.append(f"{r.case.tc_id:>4}  {r.case.id:<{width}}  {r.verdict.value:<13}  {r.reason}")
    s = summary(results, strict=strict)
    counts = ", ".join(f"{n} {v}" for v, n in s["verdicts"].items() if n)
    verdict = "PASSED" if s["passed"] else "FAILED"
    lines.append(f"{s['cases']} cases: {counts}. {verdict}{' (strict)' if strict else ''}.")
    return "\n".join(lines) + "\n"
