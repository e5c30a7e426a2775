"""The gateway's in-memory view of threads and members, and what changed between views.

The room host answers joins, disco and member lists from this snapshot; the snapshot is
reloaded whenever the "threads" change counter moves (CLI, ad-hoc commands), and the
difference tells the host whom to kick and whom to tell (IV.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from xmpp_clinic.threads.model import Affiliation, ThreadInfo


@dataclass(frozen=True)
class MembershipChange:
    """``jid``'s affiliation in ``thread`` went from ``before`` to ``after`` (None = none)."""

    thread: str
    jid: str
    before: Affiliation | None
    after: Affiliation | None


class ThreadBook:
    """An immutable snapshot: thread name -> ThreadInfo."""

    def __init__(self, threads: Iterable[ThreadInfo] = ()) -> None:
        self._threads: Mapping[str, ThreadInfo] = {t.name: t for t in threads}

    def get(self, name: str) -> ThreadInfo | None:
        return self._threads.get(name)

    def __iter__(self) -> Iterator[ThreadInfo]:
        return iter(self._threads.values())

    def __len__(self) -> int:
        return len(self._threads)

    def affiliation(self, name: str, jid: str) -> Affiliation | None:
        """``jid``'s affiliation in thread ``name``; None for non-members and unknown threads."""
        thread = self._threads.get(name)
        member = thread.member(jid) if thread is not None else None
        return member.affiliation if member is not None else None

    def threads_of(self, jid: str) -> list[ThreadInfo]:
        """The threads ``jid`` is a member of, by name (what disco#items may reveal)."""
        return sorted(
            (t for t in self._threads.values() if t.member(jid) is not None),
            key=lambda t: t.name,
        )

    def changes_to(self, new: ThreadBook) -> list[MembershipChange]:
        """Every membership that differs between this snapshot and ``new``."""
        changes: list[MembershipChange] = []
        for name in sorted(set(self._threads) | set(new._threads)):
            old_members = _affiliations(self._threads.get(name))
            new_members = _affiliations(new._threads.get(name))
            for jid in sorted(set(old_members) | set(new_members)):
                before, after = old_members.get(jid), new_members.get(jid)
                if before != after:
                    changes.append(MembershipChange(name, jid, before, after))
        return changes


def _affiliations(thread: ThreadInfo | None) -> dict[str, Affiliation]:
    if thread is None:
        return {}
    return {m.jid: m.affiliation for m in thread.members}
