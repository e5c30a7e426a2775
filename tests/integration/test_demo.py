"""`xmpp-clinic demo` (what `make demo` runs) tells the whole care-thread story and exits 0.

Runs the verb as a newcomer does, in a subprocess, on its own private Prosody, and reads
its output: devices approved, every OMEMO message decrypted by the other clinicians, the
plaintext message refused, the late joiner's MAM catch-up, the closing summary.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from xmpp_clinic.dev.demo import CONVERSATION, HANDOVER, PLAINTEXT

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


def test_demo_tells_the_care_thread_story() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xmpp_clinic", "demo"],
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

    last = output.strip().splitlines()[-1]
    assert last.startswith("Demo finished") and "everything stopped" in last
    assert "Traceback" not in proc.stderr
