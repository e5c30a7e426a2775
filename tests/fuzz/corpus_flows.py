"""Hostile flows: findings 5, 6, 8, 9, 10 and 11 of issue 8.

Actors: ``mallory`` (joined member), ``eve`` (member, not joined), ``owen`` (the
thread's owner and an IT admin: the admin paths see oversized forms through him).
A ``today`` entry says what the gateway does while the finding is open (see ``model``).
"""

from __future__ import annotations

from tests.fuzz.corpus_stanzas import CANARY, NS_MUC, REFUSED, msg
from tests.fuzz.model import (
    Case,
    Command,
    CompletedSessions,
    Flood,
    KillRestart,
    Leave,
    Omemo,
    SameAnswer,
    Send,
    big,
    case,
    error,
)

LOOKALIKE = error("conflict", "not-acceptable")
COMMAND_REFUSED = error("note", "bad-request", "not-acceptable", "policy-violation")
NICK_REFUSED = error("not-acceptable", "jid-malformed", "bad-request")
HUGE = "99999999999999999999999"
ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"

# What happens today, where a finding is still open.


def join_as(nick: str) -> str:
    """Eve's join as ``nick``; the presence id carries the marker."""
    muc = f"<x xmlns='{NS_MUC}'/>"
    return f"<presence to='{{thread}}/{nick}' id='{{marker}}-{{id}}'>{muc}</presence>"


def lookalike(case_id: str, nick: str, what: str, today: dict[str, str] | None = None) -> Case:
    """Finding 6: Eve joins with a nick confusable with Alice's (Alice is present)."""
    return case(case_id, what, Send("eve", join_as(nick), LOOKALIKE), today=today)


def mam(field: str, value: str) -> str:
    """A MAM query to the thread with one form field."""
    return (
        "<iq type='set' to='{thread}' id='{id}'><query xmlns='urn:xmpp:mam:2' queryid='q{id}'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>"
        f"<field var='{field}'><value>{value}</value></field></x></query></iq>"
    )


def mam_rsm(element: str, value: str) -> str:
    """A MAM query to the thread paged with RSM ``element`` (after, before)."""
    return (
        "<iq type='set' to='{thread}' id='{id}'><query xmlns='urn:xmpp:mam:2' queryid='q{id}'>"
        "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max>"
        f"<{element}>{value}</{element}></set></query></iq>"
    )


def room_title(title: str) -> str:
    """An owner's muc#owner form setting the thread's title."""
    return (
        "<iq type='set' to='{thread}' id='{id}'>"
        "<query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        f"<field var='FORM_TYPE'><value>{ROOMCONFIG}</value></field>"
        f"<field var='muc#roomconfig_roomname'><value>{title}</value></field></x></query></iq>"
    )


def admin(node: str, *fields: tuple[str, str]) -> Command:
    """Owen, an IT admin, runs ``node`` with ``fields``; it must be refused."""
    return Command("owen", node, fields, COMMAND_REFUSED)


FINDING_5 = (
    case("f5-session-flood", "400 ad-hoc sessions started at once by one user",
         Flood("mallory", "start-direct", 400)),
    case("f5-completed-sessions-kept", "20 ad-hoc sessions run to completion",
         CompletedSessions("mallory", "start-direct", (("jid", "{bob}"),))),
)  # fmt: skip

FINDING_6 = (
    lookalike("f6-same-nick", "Alice", "Alice's own nick while she is present"),
    lookalike("f6-cyrillic-a", "\u0410lice", "Alice with a Cyrillic A"),
    lookalike("f6-trailing-space", "Alice ", "Alice with a trailing space"),
    lookalike("f6-accent", "\u00c1lice", "Alice with an accent"),
    lookalike("f6-lower-case", "alice", "alice in lower case"),
    # Both servers fold these two to "Alice" before the gateway sees them (nameprep).
    lookalike("f6-fullwidth", "\uff21lice", "Alice with a fullwidth A"),
    lookalike("f6-zero-width", "Al\u200bice", "Alice with a zero-width space"),
    case("f6-nick-of-absent-member", "Bob's nick taken while Bob is away",
         Leave("bob", "Bob"), Send("eve", join_as("Bob"), LOOKALIKE)),
)  # fmt: skip

EVE_NICK = "<presence to='{thread}/Eve{marker}%s' id='{id}'><x xmlns='%s'/></presence>"
FINDING_8 = (
    case("f8-title-by-command", "a 100 KB thread title through the create-thread command",
         admin("create-thread", ("name", "big{device}"), ("title", big(100_000)),
               ("members", "{alice}"))),
    case("f8-title-by-room-config", "a 100 KB thread title through the room configuration",
         Send("owen", room_title(big(100_000)), error(*REFUSED))),
    case("f8-nick-1000", "a 1,000-character nick (a JID allows 1,023 bytes)",
         Send("eve", EVE_NICK % ("e" * 990, NS_MUC), NICK_REFUSED)),
    case("f8-nick-100k", "a 100 KB nick",
         Send("eve", EVE_NICK % ("e" * 100_000, NS_MUC), NICK_REFUSED)),
    case("f8-subject-by-member", "a 100 KB subject from a member",
         Send("mallory", msg("{omemo}<subject>" + big(100_000) + "</subject>"),
              error("forbidden", *REFUSED))),
    case("f8-reason-field", "a 100 KB reason in the devices-revoke form",
         admin("devices-revoke", ("jid", "{owen}"), ("device_id", "{device}"),
               ("reason", big(100_000)))),
    case("f8-asset-field", "a 100 KB MDM asset id in the devices-approve form",
         admin("devices-approve", ("jid", "{owen}"), ("device_id", "{device}"),
               ("asset", big(100_000)))),
    case("f8-members-field", "100 KB of words as the members of a new thread",
         admin("create-thread", ("name", "mem{device}"), ("title", "Ward"),
               ("members", big(100_000)))),
)  # fmt: skip

FINDING_9 = (
    case("f9-approve-huge-device-id", f"devices-approve with device id {HUGE}",
         admin("devices-approve", ("jid", "{mallory}"), ("device_id", HUGE),
               ("asset", "{marker}"))),
    case("f9-revoke-huge-device-id", f"devices-revoke with device id {HUGE}",
         admin("devices-revoke", ("jid", "{mallory}"), ("device_id", HUGE),
               ("reason", "{marker}"))),
    case("f9-approve-device-id-2-31", "devices-approve with device id 2^31",
         admin("devices-approve", ("jid", "{mallory}"), ("device_id", "2147483648"),
               ("asset", "{marker}"))),
    case("f9-approve-device-id-0", "devices-approve with device id 0",
         admin("devices-approve", ("jid", "{mallory}"), ("device_id", "0"), ("asset", "{marker}"))),
    case("f9-header-sid-huge", f"an OMEMO header with sid {HUGE} (the canary must not arrive)",
         Send("mallory", msg("{omemo}" + CANARY), error(*REFUSED),
              Omemo(path="header", attrs=(("sid", HUGE),)))),
    case("f9-key-rid-huge", f"an OMEMO key with rid {HUGE} (the canary must not arrive)",
         Send("mallory", msg("{omemo}" + CANARY), error(*REFUSED),
              Omemo(path="header/keys/key", attrs=(("rid", HUGE),)))),
)  # fmt: skip

FINDING_10 = (
    # Two seconds: the occupant journal writes in batches (0.2 s), and a kill inside that
    # window races the write: a test cannot decide it reliably.
    case("f10-kill-9", "kill -9 two seconds after members joined, then a new gateway",
         KillRestart(settle=2.0), restarts_gateway=True),
)  # fmt: skip


def oracle(
    case_id: str, what: str, first: str, second: str, today: dict[str, str] | None = None
) -> Case:
    """Finding 11: an id archived before Mallory's membership vs an id that never was."""
    return case(case_id, what, SameAnswer("mallory", first, second), today=today)


FINDING_11 = (
    oracle("f11-after-id", "MAM after-id",
           mam("after-id", "{early}"), mam("after-id", "{marker}")),
    oracle("f11-before-id", "MAM before-id",
           mam("before-id", "{early}"), mam("before-id", "{marker}")),
    oracle("f11-ids", "MAM ids", mam("ids", "{early}"), mam("ids", "{marker}")),
    oracle("f11-rsm-after", "RSM after",
           mam_rsm("after", "{early}"), mam_rsm("after", "{marker}")),
    oracle("f11-rsm-before", "RSM before",
           mam_rsm("before", "{early}"), mam_rsm("before", "{marker}")),
)  # fmt: skip

FLOW_CASES = (*FINDING_5, *FINDING_6, *FINDING_8, *FINDING_9, *FINDING_10, *FINDING_11)
