"""``xmpp-clinic report``: the compliance report, DPIA facts, saved reports (I.11, IV.3, IV.4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from xmpp_clinic.cli.common import (
    EXIT_FAILURE,
    ConfigOption,
    fail,
    print_json,
    settings_from,
    with_store,
)
from xmpp_clinic.config import Settings
from xmpp_clinic.report.build import Sources, build_report
from xmpp_clinic.report.dpia import dpia_facts, dpia_json, dpia_markdown
from xmpp_clinic.report.history import ReportHistory, Saved, diff
from xmpp_clinic.report.html import to_html
from xmpp_clinic.report.model import Report
from xmpp_clinic.report.render import to_json, to_markdown
from xmpp_clinic.store import Store

GROUP_NAME = "report"
group = typer.Typer(
    help="Compliance report: every requirement with its control, status and evidence.",
    invoke_without_command=True,
    rich_markup_mode=None,
)

Format = Literal["md", "json", "html"]
RENDER = {"md": to_markdown, "json": to_json, "html": to_html}

ServerConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--server-config",
        metavar="PATH",
        help="The XMPP server's config file (Prosody .lua or ejabberd .yml) to check.",
    ),
]
ResultsOption = Annotated[
    Path | None,
    typer.Option(
        "--test-results",
        metavar="JUNIT_XML",
        help="A JUnit XML file of a test run: show whether each proving test passed.",
    ),
]
TestsOption = Annotated[
    Path | None,
    typer.Option(
        "--tests",
        metavar="DIR",
        help="Test sources to read requirement markers from. Default: ./tests if present.",
    ),
]


def _sources(
    server: Path | None, results: Path | None, tests: Path | None, config: Path | None
) -> tuple[Settings, Sources]:
    settings = settings_from(config)
    for path, option in ((server, "--server-config"), (results, "--test-results")):
        if path is not None and not path.is_file():
            fail(f"{option}: cannot read {path}", 2)
    root = tests if tests is not None else (Path("tests") if Path("tests").is_dir() else None)
    return settings, Sources.from_settings(
        settings, server_config=server, test_results=results, tests_root=root
    )


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@group.callback()
def report(
    ctx: typer.Context,
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="md|json|html", help="Output format.")
    ] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write to FILE.")
    ] = None,
    dpia: Annotated[bool, typer.Option("--dpia", help="Print the DPIA facts (IV.3).")] = False,
    save: Annotated[
        bool, typer.Option("--save", help="Keep this report in the hash-chained history (IV.4).")
    ] = False,
    server_config: ServerConfigOption = None,
    test_results: ResultsOption = None,
    tests: TestsOption = None,
    config: ConfigOption = None,
) -> None:
    """Print the compliance report of the live system (md, json or html)."""
    ctx.ensure_object(dict)
    ctx.obj.update(server=server_config, results=test_results, tests=tests, config=config)
    if ctx.invoked_subcommand is not None:
        return
    if fmt not in RENDER:
        fail(f"--format must be md, json or html, not {fmt!r}", 2)
    settings, sources = _sources(server_config, test_results, tests, config)
    if dpia:
        if fmt == "html":
            fail("--dpia prints md or json", 2)
        facts = dpia_facts(settings)
        _write(dpia_json(facts) if fmt == "json" else dpia_markdown(facts), output)
        return

    async def make(store: Store) -> tuple[Report, Saved | None]:
        built = await build_report(settings, store, sources)
        saved = await ReportHistory(store).save(built) if save else None
        return built, saved

    built, saved = with_store(settings, make)
    _write(RENDER[fmt](built), output)
    if saved is not None:
        typer.echo(f"report saved as #{saved.seq}, hash {saved.hash}", err=True)


@group.command("diff")
def diff_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server_config: ServerConfigOption = None,
    test_results: ResultsOption = None,
    tests: TestsOption = None,
    config: ConfigOption = None,
) -> None:
    """What changed between the last saved report and the live system now (IV.4)."""
    given = ctx.obj or {}
    settings, sources = _sources(
        server_config or given.get("server"),
        test_results or given.get("results"),
        tests or given.get("tests"),
        config or given.get("config"),
    )

    async def compare(store: Store) -> tuple[Saved | None, Report, int | None]:
        history = ReportHistory(store)
        return (
            await history.latest(),
            await build_report(settings, store, sources),
            await history.verify(),
        )

    last, now, broken = with_store(settings, compare)
    if broken is not None:
        fail(f"saved report #{broken} does not match the chain: the history was changed")
    if last is None:
        fail("no saved report yet: run 'xmpp-clinic report --save' first", EXIT_FAILURE)
    changes = diff(last.report, now)
    if as_json:
        print_json(
            {
                "since": {"seq": last.seq, "generated_at": last.report.generated_at},
                "changes": [{"id": c.id, "before": c.before, "after": c.after} for c in changes],
            }
        )
        return
    typer.echo(f"since saved report #{last.seq} ({last.report.generated_at}):")
    for change in changes:
        typer.echo(f"{change.id}: {change.before or '(none)'} -> {change.after or '(none)'}")
    if not changes:
        typer.echo("no changes")
