"""The report of a conformance run: a terminal table, JSON, JUnit XML (for CI) and a
self-contained HTML page a person can send to the other party.

Everything shown comes from the checks' outcomes; what the other party wrote (a status text,
a rejection reason) was cut and escaped there (:func:`pyuftp.exceptions.excerpt`) and is
escaped again for XML and HTML here.
"""
from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree

from .checks import FAIL, PASS, SKIP, Check
from .runner import Result

__all__ = ["table", "as_json", "junit", "html_page", "passed", "dry_run", "summary"]

WIDTHS = (38, 30, 30, 4)


def passed(results: Sequence[Result]) -> bool:
    """True when no selected check failed (a skipped one does not fail the run)."""
    return all(r.outcome.status != FAIL for r in results)


def summary(results: Sequence[Result]) -> str:
    counts = {s: sum(r.outcome.status == s for r in results) for s in (PASS, FAIL, SKIP)}
    return (f"{len(results)} checks: {counts[PASS]} passed, {counts[FAIL]} failed, "
            f"{counts[SKIP]} skipped")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(results: Sequence[Result]) -> str:
    """The results as a text table: check, expected, got, result, and the excerpt (on a
    line of its own, under the row) for each check that did not pass."""
    head = ("check", "expected", "got", "")
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, WIDTHS)).rstrip()]
    for result in results:
        outcome = result.outcome
        cells = (result.check.id, outcome.expected, outcome.got, outcome.status.upper())
        lines.append("  ".join(_cut(c, w).ljust(w) for c, w in zip(cells, WIDTHS)).rstrip())
        if outcome.status != PASS and outcome.excerpt:
            lines.append(f"    {outcome.excerpt}")
    lines.append(summary(results))
    return "\n".join(lines)


def record(result: Result) -> dict[str, Any]:
    check, outcome = result.check, result.outcome
    return {"id": check.id, "section": check.section, "explanation": check.explanation,
            "level": check.level, "status": outcome.status, "expected": outcome.expected,
            "got": outcome.got, "excerpt": outcome.excerpt,
            "seconds": round(result.seconds, 3)}


def as_json(results: Sequence[Result], about: dict[str, Any]) -> dict[str, Any]:
    """The run as a JSON-ready dict: who checked whom, and every check's outcome."""
    return {**about, "passed": passed(results), "summary": summary(results),
            "checks": [record(r) for r in results]}


def junit(results: Sequence[Result], name: str = "pyuftp conformance") -> bytes:
    """JUnit XML: one testcase per check (a failure, or skipped, with the excerpt)."""
    suite = ElementTree.Element("testsuite", {
        "name": name, "tests": str(len(results)),
        "failures": str(sum(r.outcome.status == FAIL for r in results)),
        "skipped": str(sum(r.outcome.status == SKIP for r in results)),
        "time": f"{sum(r.seconds for r in results):.3f}"})
    for result in results:
        check, outcome = result.check, result.outcome
        case = ElementTree.SubElement(suite, "testcase", {
            "classname": check.id.split(".", 1)[0], "name": check.id,
            "time": f"{result.seconds:.3f}"})
        text = (f"expected {outcome.expected}; got {outcome.got}"
                + (f"; {outcome.excerpt}" if outcome.excerpt else ""))
        if outcome.status == FAIL:
            ElementTree.SubElement(case, "failure", {"message": text}).text = (
                f"{check.explanation} ({check.section})")
        elif outcome.status == SKIP:
            ElementTree.SubElement(case, "skipped", {"message": text})
    data: bytes = ElementTree.tostring(suite, encoding="utf-8", xml_declaration=True)
    return data


_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}"
          ".pass{background:#e6f4e6}.fail{background:#fbe3e3}.skip{background:#f2f2f2}"
          "small{color:#555}")


def html_page(results: Sequence[Result], about: dict[str, Any]) -> str:
    """A self-contained HTML page (no scripts, no outside resources)."""
    e = html.escape
    facts = "".join(f"<li>{e(str(k))}: {e(str(v))}</li>" for k, v in about.items())
    rows = []
    for result in results:
        check, outcome = result.check, result.outcome
        rows.append(
            f'<tr class="{e(outcome.status)}"><td><code>{e(check.id)}</code><br>'
            f"<small>{e(check.explanation)}<br>{e(check.section)} · {e(check.level)}</small>"
            f"</td><td>{e(outcome.expected)}</td><td>{e(outcome.got)}</td>"
            f"<td>{e(outcome.status.upper())}</td><td>{e(outcome.excerpt)}</td></tr>")
    made = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>UFTP conformance report</title><style>{_STYLE}</style></head><body>"
            f"<h1>UFTP conformance report</h1><ul>{facts}<li>made: {e(made)}</li></ul>"
            f"<p><strong>{e(summary(results))}</strong></p><table><tr><th>check</th>"
            "<th>expected</th><th>got</th><th>result</th><th>evidence</th></tr>"
            + "".join(rows) + "</table></body></html>\n")


def dry_run(checks: Sequence[Check]) -> str:
    """What a run would send, check by check, without sending anything."""
    lines = [f"{c.id}  [{c.level}]  sends: {c.sends}\n    {c.explanation} ({c.section})"
             for c in checks]
    total = sum(c.cost for c in checks)
    lines.append(f"{len(checks)} checks, at most {total} messages")
    return "\n".join(lines)
