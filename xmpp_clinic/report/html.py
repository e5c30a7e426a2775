"""The report as one self-contained HTML page a DPO can open (I.11).

No scripts, no external styles, fonts or images: one file that works offline. One
table row per requirement; long values wrap so the page never scrolls sideways.
"""

from __future__ import annotations

from collections import Counter
from html import escape

from xmpp_clinic.report.model import Finding, Report, Status

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:100%;color:#1b1b1b;
overflow-wrap:anywhere}
h1{font-size:1.4rem}
table{border-collapse:collapse;width:100%;table-layout:fixed}
th,td{border:1px solid #ccc;padding:.4rem;vertical-align:top;text-align:left;
overflow-wrap:anywhere;word-break:break-word}
th.id,td.id{width:4.5rem}th.st,td.st{width:8.5rem;word-break:normal;overflow-wrap:normal}
summary{cursor:pointer}
ul{margin:.2rem 0;padding-left:1.1rem}
code{white-space:pre-wrap;overflow-wrap:anywhere}
.met{background:#e6f4ea}.partly{background:#fff4d6}
.not-met{background:#fde2e1}.organisational{background:#eef1f6}
.weak{border:2px solid #b3261e;padding:.5rem 1rem;background:#fde2e1}
small{color:#555}
"""

CLASS = {
    Status.MET: "met",
    Status.PARTLY: "partly",
    Status.NOT_MET: "not-met",
    Status.ORGANISATIONAL: "organisational",
}


def _items(entries: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{e}</li>" for e in entries) + "</ul>" if entries else ""


def _tests(item: Finding) -> str:
    """A count by outcome, the list folded away (a native <details>, no script)."""
    if not item.tests:
        return "<small>none marked</small>"
    counts = Counter(t.outcome.value for t in item.tests)
    summary = f"{len(item.tests)} tests: " + ", ".join(f"{n} {o}" for o, n in counts.items())
    tests = [f"<code>{escape(t.test)}</code>: {escape(t.outcome.value)}" for t in item.tests]
    return f"<details><summary>{escape(summary)}</summary>{_items(tests)}</details>"


def _row(item: Finding) -> str:
    evidence = [f"{escape(e.label)}: <code>{escape(e.value)}</code>" for e in item.evidence]
    owner = f"<p><strong>Who:</strong> {escape(item.owner)}</p>" if item.owner else ""
    return (
        f'<tr id="{escape(item.id)}" data-id="{escape(item.id)}" class="{CLASS[item.status]}">'
        f'<td class="id"><strong>{escape(item.id)}</strong><br><small>{escape(item.level)}'
        f"</small></td>"
        f"<td>{escape(item.requirement)}<br><small>Control: {escape(item.control)}</small></td>"
        f'<td class="st"><strong>{escape(item.status.value)}</strong></td>'
        f"<td>{escape(item.reason)}{owner}{_items(evidence)}</td>"
        f"<td>{_tests(item)}</td>"
        "</tr>"
    )


def to_html(report: Report) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items())
    weak = _items([escape(w) for w in report.weakened]) or "<p>none</p>"
    run = f"<p>Test run: {escape(report.test_run)}</p>" if report.test_run else ""
    rows = "".join(_row(item) for item in report.findings)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Compliance report: {escape(report.gateway)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Compliance report: {escape(report.gateway)}</h1>"
        f"<p>Generated {escape(report.generated_at)} by xmpp-clinic "
        f"{escape(report.version)}: {escape(counts)}</p>{run}"
        f'<section class="weak"><h2>Weakened controls</h2>{weak}</section>'
        "<h2>Requirements</h2>"
        '<table><thead><tr><th class="id">ID</th><th>Requirement and control</th>'
        '<th class="st">Status</th><th>Reason and evidence</th><th>Tests</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></body></html>\n"
    )
