"""The positive control: the same Pat and Bot in a room on the server's own MUC.

Prosody's and ejabberd's MUC services are mature XEP-0045 implementations. The steps
that fail against the gateway today (issue 9) are run here unchanged: when they pass
here, they test what a compliant room does with this very Profanity, and a fixed gateway
will pass them too. The room is configured as care threads are: persistent, members
only, non-anonymous (Profanity encrypts in a room only then), archived.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from slixmpp import JID

from tests.clients.ward import BOT_NICK, Ward
from xmpp_clinic.dev.servers import DevServer

ROOM = "ward"
ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
CARE_THREAD_LIKE = {
    "muc#roomconfig_persistentroom": True,
    "muc#roomconfig_membersonly": True,
    "muc#roomconfig_whois": "anyone",
}


async def open_server_muc_ward(server: DevServer, root: Path) -> Ward:
    """Members ``mucpat`` and ``mucbot``; Bot creates and configures the room, makes Pat
    a member and leaves again (the first step wants Bot away)."""
    ward = await Ward.with_members(server, root, f"{ROOM}@{server.muc_domain}", prefix="muc")
    try:
        await _create_room(ward, server)
    except BaseException:
        await ward.close()
        raise
    return ward


async def _create_room(ward: Ward, server: DevServer) -> None:
    """Bot creates and configures the room, makes Pat a member and leaves."""
    muc: Any = ward.bot.plugin["xep_0045"]  # slixmpp's plugins are untyped
    forms: Any = ward.bot.plugin["xep_0004"]
    room = JID(ward.thread)
    await muc.join_muc_wait(room, BOT_NICK, maxstanzas=0, timeout=20)  # creates it, locked
    offered = await muc.get_room_config(room, timeout=20)
    form = forms.make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=ROOMCONFIG)
    offered_vars = {field["var"] for field in offered["fields"]}
    for var, value in CARE_THREAD_LIKE.items():
        if var not in offered_vars:
            raise RuntimeError(f"{server.kind}'s MUC offers no {var}: {sorted(offered_vars)}")
        form.add_field(var=var, value=value)
    await muc.set_room_config(room, form, timeout=20)
    await muc.set_affiliation(room, "member", jid=ward.pat, timeout=20)
    muc.leave_muc(room, BOT_NICK)
    await asyncio.sleep(0.3)  # let the server process the leave before Pat's first step
