"""Only members of a thread may write to it (IV.2)."""

from __future__ import annotations

import functools

from xmpp_clinic.jids import fast_bare
from xmpp_clinic.policy.verdict import MessageContext, ReasonCode, Verdict


@functools.lru_cache(maxsize=4096)
def _bare(members: frozenset[str]) -> frozenset[str]:
    return frozenset(fast_bare(member) for member in members)


def members_of(ctx: MessageContext) -> frozenset[str]:
    """The thread's members as bare JIDs (stored normalised; hot path, IV.2). A thread's
    set is the same object for every message until its membership changes, so each is
    normalised once."""
    return _bare(frozenset(ctx.members))  # the same object when it is one already


def check_membership(ctx: MessageContext) -> Verdict:
    """The sender must be a current member of the thread (IV.2)."""
    if fast_bare(ctx.sender) in members_of(ctx):
        return Verdict.accept()
    return Verdict.reject(
        ReasonCode.NOT_A_MEMBER,
        "You are not a member of this care thread; ask its owner to add you.",
    )
