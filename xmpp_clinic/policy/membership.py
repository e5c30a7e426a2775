"""Only members of a thread may write to it (IV.2)."""

from __future__ import annotations

from xmpp_clinic.policy.verdict import MessageContext, Verdict


def bare(jid: str) -> str:
    """A JID compared as XMPP compares bare JIDs here: no resource, case-folded."""
    return jid.split("/", 1)[0].lower()


def members_of(ctx: MessageContext) -> frozenset[str]:
    return frozenset(bare(member) for member in ctx.members)


def check_membership(ctx: MessageContext) -> Verdict:
    """The sender must be a current member of the thread (IV.2)."""
    if bare(ctx.sender) in members_of(ctx):
        return Verdict.accept()
    return Verdict.reject(
        "not-a-member", "You are not a member of this care thread; ask its owner to add you."
    )
