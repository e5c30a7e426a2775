"""A report as Markdown or JSON; HTML lives in ``report.html``."""

from __future__ import annotations

import json

from xmpp_clinic.report.model import Finding, Report, Status

MARK = {
    Status.MET: "met",
    Status.PARTLY: "PARTLY",
    Status.NOT_MET: "NOT MET",
    Status.ORGANISATIONAL: "organisational",
}


def to_json(report: Report) -> str:
    return json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n"


def _finding_md(item: Finding) -> list[str]:
    lines = [
        f"### {item.id} ({item.level}): {MARK[item.status]}",
        "",
        f"*{item.requirement}*",
        "",
        f"- Control: {item.control}",
        f"- Status: **{item.status.value}**: {item.reason}",
    ]
    if item.owner:
        lines.append(f"- Who: {item.owner}")
    for piece in item.evidence:
        lines.append(f"- Evidence: {piece.label} = `{piece.value}`")
    if item.tests:
        lines.append("- Tests:")
        lines.extend(f"  - `{t.test}`: {t.outcome.value}" for t in item.tests)
    else:
        lines.append("- Tests: none marked")
    return [*lines, ""]


def to_markdown(report: Report) -> str:
    counts = report.counts()
    lines = [
        f"# Compliance report: {report.gateway}",
        "",
        f"Generated {report.generated_at} by xmpp-clinic {report.version}. "
        + ", ".join(f"{n} {s}" for s, n in counts.items()),
        "",
    ]
    if report.test_run:
        lines += [f"Test run: {report.test_run}", ""]
    lines += ["## Weakened controls", ""]
    lines += [f"- **{w}**" for w in report.weakened] or ["- none"]
    # One section per catalogue ID and no second listing: each ID appears exactly once.
    lines += ["", "## Requirements", ""]
    for item in report.findings:
        lines += _finding_md(item)
    return "\n".join(lines)
