"""Profanity 0.13 (Debian's package), a stock OMEMO client, through a care thread (II.4).

Driven under tmux as a person would use it, on a real Prosody and a real ejabberd, with
a slixmpp-omemo member (Bot) on the other side and hospital IT approving devices with
the CLI (I.4). The tests run in file order on one thread per server, one step each:
device pending -> approved -> join -> members listed -> OMEMO message to Bot ->
plaintext refused with what to do -> Bot's message shown decrypted -> rejoin shows
history -> nick change, and the other points of issue 9.

Steps the gateway cannot pass today are strict xfails naming the point of issue 9 they
wait for: when the fix lands they pass, and strict makes that a failure until the mark
goes. Where the server cannot work with Profanity at all, the fixture works around it
and ``test_workarounds_are_stated`` says which.

Requirements: II.4 (stock clients, open protocols), II.1 (end-to-end encryption
enforced), I.4 (device approval), IV.2 (members only).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from tests.clients.profanity import Profanity
from tests.clients.ward import (
    BOT_NICK,
    BUNDLE_NODE,
    PROSODY_NOTE,
    Ward,
    attribute,
    occupant_listed,
    open_pep_node,
    start_profanity,
)
from tests.helpers.omemo import decrypt_history, fetch_thread_history
from tests.helpers.registry import wait_for_device
from xmpp_clinic.registry.model import DeviceState

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240), pytest.mark.requirement("II.4")]

UNENCRYPTED_HINT = "enable OMEMO and resend"


async def test_profanity_device_is_pending_until_hospital_it_approves_it(ward: Ward) -> None:
    """I.4: a new device is pending, its owner is told so, the CLI approves it."""
    device = await ward.pat_device_record()
    assert device.state is DeviceState.PENDING, (
        f"Profanity's device {ward.pat_device} should wait for approval, is {device.state}"
    )
    await ward.notice(f"(id {ward.pat_device}) is waiting for approval")

    approved = await ward.cli(
        "devices", "approve", ward.pat, str(ward.pat_device), "--namespace", "omemo"
    )
    assert f"approved {ward.pat}/omemo/{ward.pat_device}" in approved.stdout
    assert (await ward.pat_device_record()).state is DeviceState.APPROVED
    await ward.notice(f"(id {ward.pat_device}) is approved for care threads until")


async def test_profanity_joins_and_lists_the_members(ward: Ward) -> None:
    """IV.2: the member joins as an ordinary MUC room and sees who the members are."""
    await ward.profanity_in_room()
    await ward.profanity.command("/affiliation list member")
    await ward.profanity.wait_for("Affiliation: member")
    screen = await ward.profanity.screen()
    listed = set(re.findall(r"!\s+(\S+@\S+)", screen.split("Affiliation: member", 1)[1]))
    assert {ward.pat, ward.bot.boundjid.bare} <= listed, f"members shown: {listed}\n{screen}"
    assert occupant_listed(ward.pat_nick).search(screen), f"Pat not among occupants:\n{screen}"


async def test_omemo_message_while_the_other_member_is_away_is_kept(ward: Ward) -> None:
    """II.1: an OMEMO message from Profanity is accepted and archived; Bot, not in the
    room (so Profanity lists each member once), reads it later by MAM. Guards issue 9
    point 2: Profanity's own fallback <body> beside OMEMO is not plaintext."""
    await ward.profanity_in_room()
    if ward.bot_joined:
        pytest.fail("this step needs Bot away from the room: run it before Bot joins")
    outcome = await ward.send_from_profanity("obs 06:00 stable")
    assert not outcome.refused, (
        "the gateway refused Profanity's OMEMO message.\n"
        f"gateway received: {outcome.gateway_in}\nanswered: {outcome.answer}"
    )
    history = await decrypt_history(ward.bot, await fetch_thread_history(ward.bot, ward.thread))
    assert "obs 06:00 stable" in [m.body for m in history]


async def test_omemo_message_from_profanity_is_decrypted_by_the_other_member(
    ward: Ward,
) -> None:
    """II.1, II.4: Bot, present in the room, decrypts what Pat typed in Profanity. Guards
    issue 9 point 1: Profanity lists Bot twice (bare JID from the member list, full JID
    from presence) and sends two <key rid> for Bot's device; both must pass."""
    await ward.profanity_in_room()
    await ward.bot_in_room()
    outcome = await ward.send_from_profanity("please check bed 4")
    assert not outcome.refused, (
        "the gateway refused Profanity's OMEMO message.\n"
        f"gateway received: {outcome.gateway_in}\nanswered: {outcome.answer}"
    )
    [got] = await ward.inbox.take(1, timeout=20)
    assert (got.body, got.sender) == ("please check bed 4", ward.pat)


async def test_plaintext_is_refused_with_what_to_do(ward: Ward) -> None:
    """II.1: with OMEMO off, Profanity's message reaches nobody and Pat reads why and
    what to do, on Profanity's own screen."""
    await ward.profanity_in_room()
    await ward.bot_in_room()
    await ward.profanity.commands("/omemo end", "/clear")
    try:
        outcome = await ward.send_from_profanity("BP 120/80 bed 4")
        assert outcome.refused, f"plaintext was not refused: {outcome.answer}"
        assert "<policy-violation" in outcome.answer
        shown = await ward.profanity.wait_for(
            re.compile(r"Error from \S+: (Unencrypted messages are not allowed.*)")
        )
        assert UNENCRYPTED_HINT in shown.group(1), shown.group(0)
        await asyncio.sleep(0.5)  # anything relayed would have reached Bot by now
        assert not ward.gateway_sent("BP 120/80"), "the plaintext left the gateway"
    finally:
        await ward.profanity.command("/omemo start")


async def test_message_from_the_other_member_is_shown_decrypted(ward: Ward) -> None:
    """II.4: Profanity decrypts what a slixmpp-omemo member sends and shows it."""
    await ward.profanity_in_room()
    await ward.bot_in_room()
    await ward.bot_says("K+ 4.1 rechecked")
    await ward.profanity.wait_for(f"~ {BOT_NICK}: K+ 4.1 rechecked")


async def test_rejoin_shows_recent_history(ward: Ward) -> None:
    """II.4: Profanity has no MUC MAM; what it can show of the past is join history
    (issue 9 point 3).

    Pat leaves, Bot writes, Pat comes back and reads it. (What Pat already read live
    cannot be decrypted again from history: OMEMO message keys are used once, and
    Profanity then shows the fallback body instead.)"""
    await ward.profanity_in_room()
    await ward.bot_in_room()
    await ward.room_window()
    mark = ward.profanity.log_size()
    await ward.profanity.command("/close")
    ward.joined = False
    # Gone only once the room confirms it: else Bot's message may still reach Pat live.
    own = {"from": re.escape(f"{ward.thread}/{ward.pat_nick}"), "type": "unavailable"}
    await ward.profanity.wait_for_stanza("RECV", "presence", after=mark, where=own)
    await ward.bot_says("lactate 1.2 at 07:10")
    mark = ward.profanity.log_size()
    await ward.profanity_in_room()
    # History comes before the subject, which ends the join.
    room = {"from": re.escape(ward.thread)}
    await ward.profanity.wait_for_stanza(
        "RECV", "message", after=mark, where=room, contains="<subject"
    )
    await asyncio.sleep(0.5)  # for Profanity to decrypt and draw what came before it
    screen = await ward.profanity.screen()
    assert f"~ {BOT_NICK}: lactate 1.2 at 07:10" in screen, f"no history after rejoining:\n{screen}"


async def test_join_resent_after_a_dropped_connection_gets_the_whole_room(ward: Ward) -> None:
    """II.4: the link drops; Profanity resumes its stream (XEP-0198), so the gateway never
    saw it leave, and re-sends its join. XEP-0045: the room MUST answer as to a new join
    (every occupant's presence, then the subject), not with Pat's own presence alone
    (issue 9 point 4)."""
    await ward.profanity_in_room()
    await ward.bot_in_room()
    mark = ward.profanity.log_size()
    assert ward.link.cut() > 0, "Profanity was not connected through the link"
    own = {"from": re.escape(f"{ward.thread}/{ward.pat_nick}")}
    rejoin = await ward.profanity.wait_for_stanza(
        "SENT", "presence", after=mark, where={"to": own["from"]}, timeout=30
    )
    assert "http://jabber.org/protocol/muc" in rejoin, f"not a join: {rejoin}"
    await ward.profanity.wait_for_stanza("RECV", "presence", after=mark, where=own)
    await asyncio.sleep(1)  # the rest of the answer, if any, comes right behind
    bot = {"from": re.escape(f"{ward.thread}/{BOT_NICK}")}
    answer = ward.profanity.stanzas("RECV", "presence", after=mark, where=bot)
    subject = ward.profanity.stanzas("RECV", "message", after=mark, contains="<subject")
    assert answer and subject, (
        f"the room answered Profanity's re-sent join {rejoin}\nwith "
        f"{len(answer)} presence(s) of {BOT_NICK} and {len(subject)} subject(s)"
    )
    await ward.room_window()
    await ward.profanity.wait_for(occupant_listed(BOT_NICK), timeout=5)


async def test_nick_change(ward: Ward) -> None:
    """II.4: a nick change (XEP-0045 status 303) keeps Pat in the room (issue 9 point 5;
    refused, Profanity drops the room from its state)."""
    await ward.profanity_in_room()
    await ward.room_window()
    mark = ward.profanity.log_size()
    await ward.profanity.command("/nick Patricia")
    answer = await ward.profanity.wait_for_stanza(
        "RECV", "presence", after=mark, where={"from": re.escape(f"{ward.thread}/Patricia")}
    )
    assert 'type="error"' not in answer, f"nick change refused: {answer}"
    ward.pat_nick = "Patricia"
    await ward.profanity.wait_for(occupant_listed("Patricia"))


async def test_caps_query_and_ping_to_an_occupant_are_answered(ward: Ward) -> None:
    """II.4: Profanity asks each occupant for its capabilities (XEP-0115) and pings only
    one whose capabilities it knows; both must reach Bot and come back (issue 9 point 6)."""
    await ward.profanity_in_room()
    await ward.bot_in_room()
    occupant = re.escape(f"{ward.thread}/{BOT_NICK}")
    sent = ward.profanity.stanzas("SENT", "iq", where={"to": occupant})
    caps = [query for query in sent if "disco#info" in query]
    assert caps, f"Profanity never asked {BOT_NICK} for its capabilities"
    answer = await ward.profanity.wait_for_stanza(
        "RECV", "iq", after=0, where={"id": re.escape(attribute(caps[0], "id"))}
    )
    assert 'type="result"' in answer, f"caps query {caps[0]}\nanswered {answer}"
    mark = ward.profanity.log_size()
    await ward.profanity.command(f"/ping {ward.thread}/{BOT_NICK}")
    pong = await ward.profanity.wait_for_stanza("RECV", "iq", after=mark, where={"from": occupant})
    assert 'type="result"' in pong, f"ping to an occupant: {pong}"


async def test_one_approval_for_one_phone_in_both_omemo_versions(ward: Ward) -> None:
    """I.4: Bot's python-omemo device publishes one id with one identity key in both
    versions; one ``devices approve JID ID`` approves that phone (issue 9 point 8)."""
    bot = ward.bot.boundjid.bare
    done = await ward.cli("devices", "approve", bot, str(ward.bot_device), check=False)
    assert done.returncode == 0, done.stderr
    records = await ward.registry.devices(bot)
    states = {d.namespace: d.state for d in records if d.device_id == ward.bot_device}
    assert len(states) == 2 and set(states.values()) == {DeviceState.APPROVED}, states


async def test_a_second_profanity_device_is_pending_within_seconds(ward: Ward) -> None:
    """I.4, I.5: Pat adds a second device (another Profanity on the same account) while
    already a member; it is pending within seconds, without Pat rejoining or sending,
    and Pat is told (issue 9 point 7: the gateway's PEP subscription to the device list;
    on ejabberd the dev server's node notifies session-less subscribers)."""
    phone = Profanity(ward.root / "profanity-phone")
    account = dataclasses.replace(ward.account, port=ward.server.c2s_port)
    try:
        device = await start_profanity(phone, account)
        if ward.server.kind == "prosody":  # see PROSODY_NOTE
            await open_pep_node(ward.pat, account.password, ward.server, f"{BUNDLE_NODE}:{device}")
        try:
            found = await wait_for_device(ward.registry, ward.pat, device, timeout=10)
        except AssertionError:
            raise AssertionError(f"Pat's new device {device} was not seen within 10 s") from None
        assert found.state is DeviceState.PENDING
        await ward.notice(f"(id {device}) is waiting for approval")
    finally:
        await phone.stop()


def test_workarounds_are_stated(ward: Ward) -> None:
    """Where the server cannot work with Profanity as shipped, the fixture says so."""
    if ward.server.kind == "prosody":
        assert ward.notes == [PROSODY_NOTE]
    else:
        assert ward.notes == []
