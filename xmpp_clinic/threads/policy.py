"""The minimal default policy: refuse plaintext in care threads (II.1).

The full pipeline (membership -> e2e -> devices -> parts) lives in xmpp_clinic/policy/ and
replaces this one through ``Gateway(settings, policy=...)``.
"""

from __future__ import annotations

from xmpp_clinic.policy.verdict import MessageContext, Verdict

OMEMO_NAMESPACES = ("eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2")
_CLIENT_NS = ("jabber:client", "jabber:component:accept")


class ThreadOnlyPolicy:
    """Accept OMEMO messages and bodyless stanzas; reject a body without ``<encrypted>`` (II.1)."""

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        encrypted = any(
            ctx.stanza.find(f"{{{ns}}}encrypted") is not None for ns in OMEMO_NAMESPACES
        )
        has_body = any(ctx.stanza.find(f"{{{ns}}}body") is not None for ns in _CLIENT_NS)
        has_body = has_body or ctx.stanza.find("body") is not None
        if has_body and not encrypted:
            return Verdict.reject(
                "plaintext-refused",
                "This care thread only accepts end-to-end encrypted (OMEMO) messages.",
            )
        return Verdict.accept()
