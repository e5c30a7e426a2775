"""Only members of a thread may write to it (IV.2)."""

from __future__ import annotations

from xmpp_clinic.jids import fast_bare
from xmpp_clinic.policy.verdict import MessageContext, ReasonCode, Verdict

# Member sets seen lately -> their bare JIDs: a thread's set is the same object for every
# message until its membership changes, so each is normalised once (bounded).
_SEEN: dict[frozenset[str], frozenset[str]] = {}
_SEEN_MAX = 4096


def members_of(ctx: MessageContext) -> frozenset[str]:
    """The thread's members as bare JIDs (stored normalised; hot path, IV.2)."""
    members = ctx.members
    found = _SEEN.get(members) if isinstance(members, frozenset) else None
    if found is None:
        found = frozenset(fast_bare(member) for member in members)
        if isinstance(members, frozenset):
            if len(_SEEN) >= _SEEN_MAX:
                _SEEN.clear()
            _SEEN[members] = found
    return found


def check_membership(ctx: MessageContext) -> Verdict:
    """The sender must be a current member of the thread (IV.2)."""
    if fast_bare(ctx.sender) in members_of(ctx):
        return Verdict.accept()
    return Verdict.reject(
        ReasonCode.NOT_A_MEMBER,
        "You are not a member of this care thread; ask its owner to add you.",
    )
