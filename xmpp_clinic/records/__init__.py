"""The documentation member of documented threads (I.6, II.1).

A visible, announced member ``records@<component>`` with its own OMEMO device in both
versions (python-omemo with the oldmemo and twomemo backends). In threads flagged for
the patient record, clients encrypt to it like to any member; the gateway decrypts its
own key and keeps the plaintext encrypted at rest. Nothing here knows slixmpp.
"""


def member_jid(localpart: str, component_jid: str) -> str:
    """The records member's bare JID: ``[records] localpart`` at the component (I.6)."""
    return f"{localpart}@{component_jid}"
