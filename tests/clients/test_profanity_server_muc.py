"""Positive control: the steps that wait for issue 9 pass in the server's own MUC (II.4).

Pat (Profanity) and Bot meet in a room on Prosody's or ejabberd's MUC service,
configured as care threads are (persistent, members only, non-anonymous, archived). The
steps of ``test_profanity.py`` that are strict xfails against the gateway run here
unchanged and must pass: so each of them tests what a compliant XEP-0045 room does with
this very client, and a fixed gateway can pass it. The device-policy and plaintext steps
have no counterpart on a plain MUC and are not run here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import tests.clients.test_profanity as steps
from tests.clients.server_muc import open_server_muc_ward
from tests.clients.ward import Ward
from xmpp_clinic.dev.servers import DevServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240), pytest.mark.requirement("II.4")]

# In this order: the first needs Bot away from the room, the others have it join.
STEPS = (
    "test_omemo_message_while_the_other_member_is_away_is_kept",  # issue 9 point 2
    "test_omemo_message_from_profanity_is_decrypted_by_the_other_member",  # point 1
    "test_message_from_the_other_member_is_shown_decrypted",
    "test_rejoin_shows_recent_history",  # point 3
    "test_join_resent_after_a_dropped_connection_gets_the_whole_room",  # point 4
    "test_nick_change",  # point 5
    "test_caps_query_and_ping_to_an_occupant_are_answered",  # point 6
)


@pytest.fixture(scope="module")
async def server_muc_ward(
    client_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Ward]:
    """Pat and Bot with a room on the server's MUC, one per server and module."""
    root = tmp_path_factory.mktemp(f"server-muc-{client_server.kind}")
    ward = await open_server_muc_ward(client_server, root)
    try:
        yield ward
    finally:
        await ward.close()


@pytest.mark.parametrize("step", STEPS)
async def test_step_passes_in_the_servers_own_muc(server_muc_ward: Ward, step: str) -> None:
    await getattr(steps, step)(server_muc_ward)
