"""Hostile single stanzas: findings 1, 2, 3, 4 and 7 of issue 8, and the silent drops.

Actors: ``mallory`` (a joined member with an approved OMEMO device), ``eve`` (a member
who has not joined). ``{omemo}`` is a valid OMEMO element from Mallory; a case's change
to it is an :class:`Omemo`. Each case's marker (``{marker}``) rides in the hostile part.
Where the hostile part cannot hold text (a number, a structure), an origin-id carrying
the marker rides along as a canary: it reaches Alice only if the stanza was let through.
A ``today`` entry says what the gateway does while the finding is open (see ``model``).
"""

from __future__ import annotations

from tests.fuzz.model import (
    SILENT,
    Expect,
    Omemo,
    Send,
    Session,
    case,
    deep,
    error,
    error_or,
    on,
)

NS_MUC = "http://jabber.org/protocol/muc"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
BAD_ADDRESS = error("jid-malformed", "not-acceptable", "bad-request")
REFUSED = ("policy-violation", "not-acceptable", "bad-request")
# Refused, or let through without the hostile part (the marker checks decide).
REFUSED_OR_CLEANED = error_or("relayed", conditions=REFUSED)
PRESENCE = error_or("joined")
WORDS = "Patient Hans Mueller K 6 1 bed 12 please review {marker}"
FREE = "Hans Mueller {marker}"
CANARY = "<origin-id xmlns='urn:xmpp:sid:0' id='{marker}'/>"
EMOJI = "\U0001f489"  # a syringe: a code point slixmpp's stringprep tables do not assign


def msg(
    children: str, *, msg_id: str = "{id}", to: str = "{thread}", kind: str = "groupchat"
) -> str:
    return f"<message to='{to}' type='{kind}' id='{msg_id}'>{children}</message>"


def join(nick: str, children: str = "", thread: str = "{thread}") -> str:
    return f"<presence to='{thread}/{nick}' id='{{id}}'><x xmlns='{NS_MUC}'/>{children}</presence>"


def update(children: str) -> str:
    """Mallory's presence update in the thread (she is joined as Mallory)."""
    return f"<presence to='{{thread}}/Mallory' id='{{id}}'>{children}</presence>"


def disco(to: str, inner: str = "") -> str:
    query = f"<query xmlns='http://jabber.org/protocol/disco#info'>{inner}</query>"
    return f"<iq type='get' to='{to}' id='{{id}}'>{query}</iq>"


def by_mallory(children: str, expect: Expect = REFUSED_OR_CLEANED) -> Send:
    """Mallory's groupchat message: her valid OMEMO element, then ``children``."""
    return Send("mallory", msg("{omemo}" + children), expect)


def changed(omemo: Omemo, expect: Expect | None = None) -> Send:
    """Mallory's groupchat message whose OMEMO element is changed as ``omemo`` says."""
    return Send("mallory", msg("{omemo}"), expect or error(*REFUSED), omemo)


# What happens today, where a finding is still open.
ID_LINE_BREAK_PROSODY = on(
    "prosody", 2, "Prosody writes an attribute's line break raw on the component stream "
    "(util.stanza's xml_escape leaves it), so the gateway receives the id with a space and can "
    "only echo that; the gateway writes &#10; (ejabberd passes), Prosody's c2s copy is raw too",
)  # fmt: skip

FINDING_1 = (
    case("f1-join-emoji-nick", "join with an emoji nick (slixmpp's JID() raises)",
         Send("eve", join(EMOJI + "{marker}"), BAD_ADDRESS)),
    case("f1-join-unassigned-nick", "join with an unassigned code point (U+0378) in the nick",
         Send("eve", join("\u0378{marker}"), BAD_ADDRESS)),
    case("f1-private-message-emoji-nick", "a private message to an emoji nick",
         Send("mallory", msg("{omemo}", to="{thread}/" + EMOJI + "{marker}", kind="chat"),
              error(*BAD_ADDRESS.conditions, "forbidden"))),
    case("f1-message-emoji-thread", "a groupchat message to a thread with an emoji localpart",
         Send("mallory", msg("{omemo}", to=EMOJI + "{marker}@{component}"),
              error(*BAD_ADDRESS.conditions, "item-not-found"))),
    case("f1-join-emoji-thread", "a join to a thread with an emoji localpart",
         Send("eve", join("Eve", thread=EMOJI + "{marker}@{component}"),
              error(*BAD_ADDRESS.conditions, "registration-required", "item-not-found"))),
    case("f1-disco-emoji-thread", "disco#info to a thread with an emoji localpart",
         Send("mallory", disco(EMOJI + "{marker}@{component}"),
              error(*BAD_ADDRESS.conditions, "item-not-found"))),
    case("f1-disco-emoji-resource", "disco#info to the component with an emoji resource",
         Send("mallory", disco("{component}/" + EMOJI + "{marker}"), error_or("result"))),
    # Both servers keep such a resource off the wire: Prosody binds a random one instead.
    case("f1-session-emoji-resource", "a session bound to an emoji resource asks the component",
         Session("mallory", EMOJI + "{marker}", disco("{component}"), error_or("result"))),
)  # fmt: skip

SID = "urn:xmpp:sid:0"
EME = "urn:xmpp:eme:0"
FINDING_2 = (
    case("f2-message-id-free-text", "free text in the message id (reached recipients)",
         Send("mallory", msg("{omemo}", msg_id="Patient " + FREE + ", K+ 6.1, bed 12"),
              error(*REFUSED))),
    case("f2-message-id-overlong", "an id-shaped message id of 350 characters",
         Send("mallory", msg("{omemo}", msg_id="{marker}" + "-0123456789" * 32),
              error(*REFUSED))),
    case("f2-message-id-line-break", "an id with a line break: the error must carry it back",
         Send("mallory", msg("{omemo}", msg_id="fz&#10;{marker}"), error(*REFUSED)),
         today=ID_LINE_BREAK_PROSODY),
    case("f2-thread-free-text", "free text in <thread>",
         by_mallory(f"<thread>{FREE} bed 12</thread>")),
    case("f2-thread-overlong", "an id-shaped <thread> of 300 characters",
         by_mallory("<thread>{marker}" + "x" * 290 + "</thread>")),
    case("f2-thread-parent-free-text", "free text in <thread parent>",
         by_mallory(f"<thread parent='{FREE}'>t1</thread>")),
    case("f2-thread-unknown-attribute", "free text in an attribute <thread> does not define",
         by_mallory(f"<thread href='{FREE}'>t1</thread>")),
    case("f2-origin-id-free-text", "free text in origin-id",
         by_mallory(f"<origin-id xmlns='{SID}' id='{FREE}'/>")),
    case("f2-origin-id-overlong", "an origin-id of 300 characters",
         by_mallory(f"<origin-id xmlns='{SID}' id='{{marker}}" + "x" * 290 + "'/>")),
    case("f2-replace-id-free-text", "free text in a correction's replace id",
         by_mallory(f"<replace xmlns='urn:xmpp:message-correct:0' id='{FREE}'/>")),
    case("f2-receipt-id-free-text", "free text in a receipt id",
         by_mallory(f"<received xmlns='urn:xmpp:receipts' id='{FREE}'/>")),
    case("f2-chat-marker-id-free-text", "free text in a chat marker id",
         by_mallory(f"<displayed xmlns='urn:xmpp:chat-markers:0' id='{FREE}'/>")),
    case("f2-eme-name-free-text", "free text in the EME name",
         by_mallory(f"<encryption xmlns='{EME}' namespace='urn:xmpp:omemo:2' name='{FREE}'/>")),
    case("f2-eme-name-not-omemo", "an EME name that names no encryption",
         by_mallory(f"<encryption xmlns='{EME}' namespace='urn:xmpp:omemo:2' name='{{marker}}'/>")),
    case("f2-eme-namespace-free-text", "words as the EME namespace",
         by_mallory(f"<encryption xmlns='{EME}' namespace='{{marker}}:K+6.1'/>")),
    case("f2-body-lang-not-bcp47", "a fallback body whose xml:lang is no language tag",
         by_mallory("<body xml:lang='{marker}x'>This message is OMEMO encrypted.</body>")),
    case("f2-delay-stamp-free-text", "free text as a delay stamp (the relay drops delays)",
         by_mallory("<delay xmlns='urn:xmpp:delay' stamp='{marker}'/>")),
    case("f2-stanza-id-free-text", "a sender's stanza-id (the relay drops them)",
         by_mallory(f"<stanza-id xmlns='{SID}' id='{{marker}}' by='{{thread}}'/>")),
    case("f2-message-lang-free-text", "free text in the message's own xml:lang",
         Send("mallory", msg("{omemo}").replace("<message ", f"<message xml:lang='{FREE}' "),
              REFUSED_OR_CLEANED)),
    case("f2-prekey-not-boolean", "a legacy key whose prekey flag is a word",
         changed(Omemo("legacy", "header/key", attrs=(("prekey", "{marker}"),)),
                 REFUSED_OR_CLEANED)),
    case("f2-kex-not-boolean", "an OMEMO 2 key whose kex flag is a word",
         changed(Omemo(path="header/keys/key", attrs=(("kex", "{marker}"),)), REFUSED_OR_CLEANED)),
    case("f2-keys-jid-outsider", "OMEMO 2 keys addressed to a JID that is no member",
         changed(Omemo(path="header/keys", attrs=(("jid", "{marker}@{domain}"),)),
                 REFUSED_OR_CLEANED)),
)  # fmt: skip

FINDING_3 = (
    case("f3-payload-words", "words as OMEMO 2 payload",
         changed(Omemo(path="payload", text=WORDS))),
    case("f3-key-words", "words as an OMEMO 2 key",
         changed(Omemo(path="header/keys/key", text=WORDS))),
    case("f3-payload-words-legacy", "words as legacy payload",
         changed(Omemo("legacy", "payload", WORDS))),
    case("f3-key-words-legacy", "words as a legacy key",
         changed(Omemo("legacy", "header/key", WORDS))),
    case("f3-iv-words-legacy", "words as the legacy IV",
         changed(Omemo("legacy", "header/iv", WORDS))),
    case("f3-iv-15-bytes-legacy", "valid base64 of 15 bytes as the IV (OMEMO uses 12)",
         changed(Omemo("legacy", "header/iv", "{marker}", pad_to=20))),
    case("f3-key-12-bytes-legacy", "a legacy key of 12 bytes (OMEMO keys are 32+)",
         changed(Omemo("legacy", "header/key", "{marker}", pad_to=16))),
    case("f3-key-12-bytes", "an OMEMO 2 key of 12 bytes",
         changed(Omemo(path="header/keys/key", text="{marker}", pad_to=16))),
    case("f3-payload-bad-length", "payload base64 of impossible length (19 characters)",
         changed(Omemo(path="payload", text="{marker}", pad_to=19))),
    case("f3-payload-line-break", "a line break inside the payload's base64",
         changed(Omemo(path="payload", text="{marker}AAA\nAAAA"))),
)  # fmt: skip

NICK = "http://jabber.org/protocol/nick"
OOB = "<x xmlns='jabber:x:oob'><url>https://example.org/{marker}</url></x>"
FINDING_4 = (
    case("f4-status-text", "<status> text in a member's presence",
         Send("mallory", update(f"<status>{FREE} bed 12</status>"), PRESENCE)),
    case("f4-unknown-child", "an unknown element in a member's presence",
         Send("mallory", update("<x xmlns='urn:example:leak'>{marker}</x>"), PRESENCE)),
    case("f4-oob-link", "a link (jabber:x:oob) in a member's presence",
         Send("mallory", update(OOB), PRESENCE)),
    case("f4-nick-element", "a XEP-0172 nick in a member's presence",
         Send("mallory", update(f"<nick xmlns='{NICK}'>{{marker}}</nick>"), PRESENCE)),
    case("f4-show-free-text", "free text as <show>",
         Send("mallory", update("<show>{marker}</show>"), PRESENCE)),
    case("f4-priority-free-text", "free text as <priority>",
         Send("mallory", update("<priority>{marker}</priority>"), PRESENCE)),
    case("f4-status-on-join", "<status> text in the join presence",
         Send("eve", join("Eve", f"<status>{FREE}</status>"), PRESENCE)),
    case("f4-muc-password", "text inside the join's muc <x> (the host drops that <x>)",
         Send("eve", join("Eve").replace("'/>", "'><password>{marker}</password></x>", 1),
              PRESENCE)),
)  # fmt: skip

MUC_ADMIN = "<query xmlns='http://jabber.org/protocol/muc#admin'>"
FINDING_7 = (
    case("f7-message-deep", "500 nested elements beside OMEMO",
         by_mallory(deep(500), error(*REFUSED))),
    case("f7-message-deep-in-header", "500 nested elements inside the OMEMO header",
         changed(Omemo(path="header", inner=deep(500)))),
    case("f7-presence-deep", "500 nested elements in a presence update",
         Send("mallory", update(deep(500)), PRESENCE)),
    case("f7-join-deep", "500 nested elements in a join",
         Send("eve", join("Eve", deep(500)), PRESENCE)),
    case("f7-iq-deep-thread", "500 nested elements in a muc#admin query to the thread",
         Send("mallory", f"<iq type='get' to='{{thread}}' id='{{id}}'>{MUC_ADMIN}"
              + deep(500) + "</query></iq>",
              error("bad-request", "not-acceptable", "policy-violation"))),
    case("f7-iq-deep-component", "500 nested elements in disco#info to the component",
         Send("mallory", disco("{component}", deep(500)), error_or("result"))),
)  # fmt: skip

_ERROR = (
    f"<error type='cancel'><undefined-condition xmlns='{NS_STANZAS}'/>"
    f"<text xmlns='{NS_STANZAS}'>{{marker}}</text></error>"
)
# Stanzas the gateway documents as dropped without an answer.
SILENT_DROPS = (
    case("silent-presence-subscribe", "a subscription request to a thread: ignored",
         Send("eve", "<presence type='subscribe' to='{thread}' id='{id}'>"
              "<status>{marker}</status></presence>", SILENT)),
    case("silent-presence-probe", "a presence probe to an occupant: ignored",
         Send("eve", "<presence type='probe' to='{thread}/Alice' id='{id}'>"
              "<status>{marker}</status></presence>", SILENT)),
    case("silent-unavailable-unknown-nick", "leaving a thread one never joined: ignored",
         Send("eve", "<presence type='unavailable' to='{thread}/Nobody' id='{id}'>"
              "<status>{marker}</status></presence>", SILENT)),
    case("silent-message-error",
         "an error message to the thread: the session is dropped (XEP-0045 16.4), not answered",
         Send("mallory", f"<message type='error' to='{{thread}}' id='{{id}}'>{_ERROR}</message>",
              SILENT)),
    case("silent-iq-result-to-component", "an unsolicited iq result: ignored (RFC 6120 8.2.3)",
         Send("mallory", "<iq type='result' to='{component}' id='{id}'>"
              "<query xmlns='urn:example'>{marker}</query></iq>", SILENT)),
    case("silent-iq-error-to-thread", "an unsolicited iq error: ignored (RFC 6120 8.3.1)",
         Send("mallory", f"<iq type='error' to='{{thread}}' id='{{id}}'>{_ERROR}</iq>", SILENT)),
)  # fmt: skip

STANZA_CASES = (*FINDING_1, *FINDING_2, *FINDING_3, *FINDING_4, *FINDING_7, *SILENT_DROPS)
