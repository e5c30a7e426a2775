"""XMPP namespaces the gateway speaks, one constant each (no slixmpp; pure strings).

OMEMO's own namespaces live in :mod:`xmpp_clinic.omemo` with the rest of its wire format.
"""

from __future__ import annotations

CLIENT = "jabber:client"
COMPONENT = "jabber:component:accept"
SERVER = "jabber:server"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
MUC_OWNER = "http://jabber.org/protocol/muc#owner"
OCCUPANT_ID = "urn:xmpp:occupant-id:0"
SID = "urn:xmpp:sid:0"
DELAY = "urn:xmpp:delay"
FORWARD = "urn:xmpp:forward:0"
MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
DATA = "jabber:x:data"
PUBSUB = "http://jabber.org/protocol/pubsub"
PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
COMMANDS = "http://jabber.org/protocol/commands"
PING = "urn:xmpp:ping"
VERSION = "jabber:iq:version"
CAPS = "http://jabber.org/protocol/caps"
EME = "urn:xmpp:eme:0"
HINTS = "urn:xmpp:hints"
RECEIPTS = "urn:xmpp:receipts"
CHAT_MARKERS = "urn:xmpp:chat-markers:0"
CHAT_STATES = "http://jabber.org/protocol/chatstates"
CORRECTION = "urn:xmpp:message-correct:0"
FALLBACK = "urn:xmpp:fallback:0"
SEARCH = "jabber:iq:search"
ROSTER = "jabber:iq:roster"
PRIVILEGE_1 = "urn:xmpp:privilege:1"
PRIVILEGE_2 = "urn:xmpp:privilege:2"
OPENPGP = "urn:xmpp:openpgp:0"  # XEP-0373: refused in care threads (OMEMO only)
LEGACY_OPENPGP = "jabber:x:encrypted"  # XEP-0027: refused in care threads
XML = "http://www.w3.org/XML/1998/namespace"  # xml:lang

# The gateway's own extensions (documented in docs/protocol.md).
CLINIC_POLICY = "urn:xmpp-clinic:policy:0"  # reason code inside a policy-violation error
CLINIC_SEQ = "urn:xmpp-clinic:seq:0"  # per-thread sequence number on every relayed message
CLINIC_PARTS = "urn:xmpp-clinic:parts:0"  # "part x of y" marker
