"""`xmpp-clinic demo` (what `make demo` runs) tells the whole care-thread story and exits 0.

Runs the verb as a newcomer does, in a subprocess, on its own private Prosody, and reads
its output: devices approved, every OMEMO message decrypted by the other clinicians, the
plaintext message refused, the late joiner's MAM catch-up, the closing summary. Then
``xmpp-clinic report`` on the config and store the demo left behind shows the approved
devices, the audit chain verified, the proving tests per ID with their outcome, and
every catalogue ID exactly once (I.11).

``demo --keep DIR`` leaves the demo's config, store and keys in DIR, so the report reads
what the demo did.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xmpp_clinic.dev.demo import CONVERSATION, HANDOVER, PLAINTEXT
from xmpp_clinic.report.catalogue import catalogue_ids

REPO = Path(__file__).resolve().parents[2]
THIS_TEST = "tests.integration.test_demo"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(240),
    pytest.mark.requirement("II.1", "I.4"),
]


def _section(output: str, number: int) -> str:
    """The text of the story's step ``number`` (from its heading to the next one)."""
    match = re.search(rf"^{number}\. .*?(?=^\d\. |^Demo finished)", output, re.M | re.S)
    assert match, f"no step {number} in the demo output:\n{output}"
    return match.group(0)


@pytest.mark.requirement("I.11", "II.2")
def test_demo_tells_the_care_thread_story(tmp_path: Path) -> None:
    kept = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "xmpp_clinic", "demo", "--keep", str(kept)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},  # rich wraps at 80 columns without a terminal
        timeout=200,
    )
    output = proc.stdout
    assert proc.returncode == 0, f"demo exited {proc.returncode}:\n{output}\n{proc.stderr}"
    assert "Privacy notice" in output  # the discovery part is still there

    created = _section(output, 1)
    assert "$ xmpp-clinic threads create ward-4b" in created
    assert "4 members" in created

    approvals = _section(output, 3)
    approved = re.findall(r"\$ xmpp-clinic devices approve (\S+) (\d+)", approvals)
    assert len(approved) == 4 and len({jid for jid, _ in approved}) == 4
    assert approvals.count("matches the phone") == 4
    assert approvals.count("approved until") == 4

    handover = _section(output, 4)
    assert handover.count(f"decrypted: {HANDOVER}\n") == 3, handover  # all three on shift

    chat = _section(output, 5)
    for _sender, text in CONVERSATION:  # each message read by the two other clinicians
        assert chat.count(f"decrypted: {text}\n") == 2, chat
    assert chat.count("sees it come back") == len(CONVERSATION)

    refused = _section(output, 6)
    assert PLAINTEXT in refused
    assert "refused: policy-violation" in refused
    assert "nobody else received it" in refused

    caught_up = _section(output, 7)  # what was said while the late joiner was away
    lines = re.findall(r"from (.+?)\s+decrypted: (.+)", caught_up)
    names = ["Dr. Alice", "Nurse Bob", "Dr. Carol"]
    assert lines == [(names[i], text) for i, text in CONVERSATION], caught_up

    finished, kept_line = output.strip().splitlines()[-2:]
    assert finished.startswith("Demo finished") and "everything stopped" in finished
    assert kept_line.startswith(f"Kept in {kept}: try xmpp-clinic report --config ")
    assert "Traceback" not in proc.stderr
    _report_shows_what_the_demo_did(kept, tmp_path)


def _junit(folder: Path) -> Path:
    """A small JUnit file of a run: this test passed, proving II.1 and I.4."""
    path = folder / "junit.xml"
    path.write_text(
        '<testsuites><testsuite name="pytest" tests="1">'
        f'<testcase classname="{THIS_TEST}" name="test_demo_tells_the_care_thread_story">'
        '<properties><property name="requirement" value="II.1"/>'
        '<property name="requirement" value="I.4"/></properties></testcase>'
        "</testsuite></testsuites>",
        encoding="utf-8",
    )
    return path


def _report(config: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "xmpp_clinic", "report", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, f"report exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def _report_shows_what_the_demo_did(kept: Path, tmp_path: Path) -> None:
    config = kept / "xmpp-clinic.toml"
    assert config.is_file(), f"the demo left no config in {kept}: {sorted(kept.iterdir())}"
    junit = _junit(tmp_path)
    given = ("--test-results", str(junit), "--tests", str(REPO / "tests"))
    data: dict[str, Any] = json.loads(_report(config, "--format", "json", *given))
    ids = [f["id"] for f in data["findings"]]
    assert sorted(ids) == sorted(catalogue_ids()) and len(ids) == len(set(ids))
    by_id = {f["id"]: f for f in data["findings"]}

    def evidence(requirement: str) -> dict[str, str]:
        return {e["label"]: e["value"] for e in by_id[requirement]["evidence"]}

    assert evidence("I.4")["devices approved"] == "4"  # the four phones, by IT
    assert evidence("I.4")["approved without a compared fingerprint"] == "0"
    assert by_id["I.4"]["status"] == "met", by_id["I.4"]
    assert evidence("II.2")["audit chain"] == "intact"
    assert int(evidence("II.2")["audit events"]) >= 4  # at least the four approvals
    assert by_id["II.2"]["status"] == "met", by_id["II.2"]
    # Tests per ID: this run's outcome for the given ones, markers read from tests/.
    this = "tests/integration/test_demo.py::test_demo_tells_the_care_thread_story"
    for requirement in ("II.1", "I.4"):
        outcomes = {t["test"]: t["outcome"] for t in by_id[requirement]["tests"]}
        assert outcomes.get(this) == "passed", outcomes
    assert "1 passed" in data["test_run"]
    assert all(by_id[i]["tests"] for i in ("I.5", "IV.2")), "markers of tests/ are listed"
    markdown = _report(config, *given)
    for requirement in catalogue_ids():
        assert len(re.findall(rf"^#+ {re.escape(requirement)}\b", markdown, re.M)) == 1, requirement
