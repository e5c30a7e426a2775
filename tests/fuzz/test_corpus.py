"""Every case of the hostile-input corpus, on a real Prosody and a real ejabberd (issue 8).

Requirements II.1, II.2, II.3, IV.2, I.12: one stanza must not take the gateway offline,
every stanza gets an answer or a documented silent drop, the gateway stays responsive,
and no marker text from a hostile payload appears at a recipient, in the store or in
the logs (see ``runner`` for the invariants, ``corpus`` for the cases). A case whose
finding is still open carries ``today``: conftest marks it ``xfail(strict=True)`` with
that reason on that server, so the suite turns red the moment a fix lands without the
corpus being updated.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fuzz.conftest import SERVER_KINDS
from tests.fuzz.corpus import CASES
from tests.fuzz.exchange import Outcome
from tests.fuzz.model import Case, marker_for
from tests.fuzz.rig import Rig
from tests.fuzz.runner import run_case

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.requirement("II.1", "II.2", "II.3", "IV.2", "I.12"),
]


def test_cases_have_unique_ids_and_markers() -> None:
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids)
    assert len({marker_for(i) for i in ids}) == len(ids)
    assert all(0 <= case.finding <= 11 for case in CASES)
    assert {case.finding for case in CASES} >= set(range(1, 12))
    assert all(set(case.today) <= set(SERVER_KINDS) for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
@pytest.mark.parametrize("rig", SERVER_KINDS, indirect=True)
async def test_hostile_input(rig: Rig, case: Case, fuzz_report: Callable[[Outcome], None]) -> None:
    outcome = await run_case(rig, case)
    fuzz_report(outcome)
    assert not outcome.problems, "\n".join(
        [f"{case.id} (finding {case.finding}): {case.what}", *outcome.lines, "problems:",
         *outcome.problems]
    )  # fmt: skip
