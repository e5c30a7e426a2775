"""Only members of a thread may write to it (IV.2)."""

from __future__ import annotations

from xmpp_clinic.jids import fast_bare
from xmpp_clinic.policy.verdict import MessageContext, ReasonCode, Verdict


def members_of(ctx: MessageContext) -> frozenset[str]:
    """The thread's members as bare JIDs (stored normalised; hot path, IV.2)."""
    return frozenset(fast_bare(member) for member in ctx.members)


def check_membership(ctx: MessageContext) -> Verdict:
    """The sender must be a current member of the thread (IV.2)."""
    if fast_bare(ctx.sender) in members_of(ctx):
        return Verdict.accept()
    return Verdict.reject(
        ReasonCode.NOT_A_MEMBER,
        "You are not a member of this care thread; ask its owner to add you.",
    )
