"""Who is joined to which care thread, and which nick is bound to whom (I.12, IV.2).

The room host keeps occupants in memory; these rows let a gateway that was killed
(kill -9, power loss) tell the sessions that were joined to rejoin, instead of leaving
them to believe they still receive (issue 8.10). Nick bindings keep a person's nick
theirs across restarts (issue 8.6). Both are rewritten per thread, in batches, from
the host's memory (xmpp/occupant_journal.py); they hold addresses and nicks, no content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xmpp_clinic.clock import utcnow
from xmpp_clinic.store.base import Base


class JoinedSession(Base):
    """One session (real full JID) joined to a thread under a nick."""

    __tablename__ = "thread_occupants"
    __table_args__ = (UniqueConstraint("thread", "jid", name="uq_thread_occupants_thread_jid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    thread: Mapped[str] = mapped_column(String(64), index=True)  # the thread's name
    jid: Mapped[str] = mapped_column(String(3071))
    nick: Mapped[str] = mapped_column(String(256))
    since: Mapped[datetime] = mapped_column(default=utcnow)


class BoundNick(Base):
    """The nick a person last used in a thread: nobody else may take it or a lookalike."""

    __tablename__ = "thread_nicks"
    __table_args__ = (UniqueConstraint("thread", "jid", name="uq_thread_nicks_thread_jid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    thread: Mapped[str] = mapped_column(String(64), index=True)
    jid: Mapped[str] = mapped_column(String(320))  # bare JID
    nick: Mapped[str] = mapped_column(String(256))
