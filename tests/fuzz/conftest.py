"""Fixtures for the hostile-input suite (issue 8): one rig per server kind, per session.

Tests take ``rig`` through indirect parametrisation over :data:`SERVER_KINDS` (on its
own, so that it keeps the fixture's session scope), so pytest runs every Prosody test,
then every ejabberd test, with one server and one gateway each.
``XMPP_CLINIC_FUZZ_REPORT=<file>`` appends what every case did (answers and problems, as
JSON lines) to ``<file>``: the record the fixes are written against.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable

import pytest

from tests.fuzz.exchange import Outcome
from tests.fuzz.model import Case
from tests.fuzz.rig import Rig

SERVER_KINDS = ("prosody", "ejabberd")
REPORT_ENV = "XMPP_CLINIC_FUZZ_REPORT"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each (server, case) whose finding is still open there: xfail, strictly."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        case, kind = params.get("case"), params.get("rig")
        if isinstance(case, Case) and kind in case.today:
            item.add_marker(pytest.mark.xfail(strict=True, reason=case.today[kind]))


@pytest.fixture(scope="session")
async def rig(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    """A started :class:`Rig` on the server kind given as the parameter."""
    kind = request.param
    rig = Rig(kind, tmp_path_factory.mktemp(f"fuzz-{kind}"))
    try:
        await rig.start()
        yield rig
    finally:
        await rig.stop()


@pytest.fixture
def fuzz_report() -> Callable[[Outcome], None]:
    """Record an outcome in ``$XMPP_CLINIC_FUZZ_REPORT`` when that is set."""

    def record(outcome: Outcome) -> None:
        path = os.environ.get(REPORT_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as report:
                report.write(json.dumps(outcome.as_report(), ensure_ascii=False) + "\n")

    return record
