"""The hostile-input corpus of issue 8: one or more cases per finding, and the silent drops.

Read a case as: finding, what is sent, what the gateway must answer, and (``today``)
what it does instead on each server kind while the finding is open.
"""

from __future__ import annotations

from tests.fuzz.corpus_flows import FLOW_CASES
from tests.fuzz.corpus_stanzas import STANZA_CASES
from tests.fuzz.model import Case

CASES: tuple[Case, ...] = (*STANZA_CASES, *FLOW_CASES)
