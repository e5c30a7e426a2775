"""Device ad-hoc commands over a real server link (issue 8.5, 8.9; I.5, I.12, III.3).

An IT admin's client runs "Devices: approve" through Prosody and ejabberd: an oversized
device id is a clear note, not "Slixmpp got into trouble"; starting more sessions than
the cap gets ``resource-constraint`` (wait); finished sessions are freed; and the
component link stays up throughout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.integration.conftest import PASSWORD, GatewayHandle
from xmpp_clinic.xmpp.adhoc import SESSIONS_PER_PERSON

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MakeUsers = Callable[..., list[str]]
GatewayFactory = Callable[..., Awaitable[GatewayHandle]]
PLUGINS = ("xep_0030", "xep_0004", "xep_0050")
APPROVE = "devices-approve"


def form(bot: Any, **fields: str) -> Any:
    submitted = bot.plugin["xep_0004"].make_form(ftype="submit")
    for var, value in fields.items():
        submitted.add_field(var=var, value=value)
    return submitted


def notes(iq: Any) -> list[str]:
    return [text for _kind, text in iq["command"]["notes"]]


@pytest.mark.requirement("I.5", "I.12")
async def test_device_commands_are_bounded_over_the_real_link(
    make_users: MakeUsers, gateway_factory: GatewayFactory
) -> None:
    (admin,) = make_users("it")
    gw = await gateway_factory(xmpp={"admins": [admin]})
    bot = await connect_bot(admin, PASSWORD, gw.server, plugins=PLUGINS)
    adhoc = bot.plugin["xep_0050"]
    try:
        started = await adhoc.send_command(gw.jid, APPROVE, action="execute")
        session = started["command"]["sessionid"]
        fields = {"jid": admin, "device_id": "99999999999999999999999"}
        done = await adhoc.send_command(
            gw.jid, APPROVE, action="complete", sessionid=session, payload=form(bot, **fields)
        )
        assert done["command"]["status"] == "completed"
        assert notes(done) == ["device id must be a number from 1 to 2147483647"]
        assert gw.gateway.component.online

        for _ in range(SESSIONS_PER_PERSON):
            await adhoc.send_command(gw.jid, APPROVE, action="execute")
        with pytest.raises(IqError) as refused:
            await adhoc.send_command(gw.jid, APPROVE, action="execute")
        error = refused.value.iq["error"]
        assert (error["type"], error["condition"]) == ("wait", "resource-constraint")
        assert "5 command sessions open" in error["text"]
        assert len(gw.gateway.component.plugin["xep_0050"].sessions) == SESSIONS_PER_PERSON
        assert gw.gateway.component.online
    finally:
        await disconnect_bot(bot)
