"""Who may run, and who may continue, the gateway's ad-hoc commands (IV.2, I.5, III.3).

Every command set (``adhoc.CommandSet``) asks this one place. Admins are
``xmpp.admins`` and users are people of ``xmpp.user_domains``, normalised once with
:mod:`xmpp_clinic.jids` as everywhere else, so they compare as the servers compare JIDs.

slixmpp's xep_0050 finds a continued session by its id alone and gives the next step no
access to the requesting stanza, so :meth:`CommandAccess.guard` listens to the
synchronous "command" event (which runs before xep_0050 handles the stanza) and drops a
session that someone other than the person who started it tries to continue; xep_0050
then treats the stanza as a fresh start, which the command refuses (``forbidden`` for
who may not run it, else ``bad-sessionid``: see ``adhoc.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slixmpp import JID

from xmpp_clinic.config import XmppSettings
from xmpp_clinic.jids import InvalidJid, bare_jid, check_domain, domain_of

log = logging.getLogger(__name__)


class CommandAccess:
    """The admin and user checks shared by every ad-hoc command of the gateway."""

    def __init__(self, settings: XmppSettings) -> None:
        # The config validates both lists; a malformed entry here fails at start.
        self._admins = frozenset(bare_jid(jid) for jid in settings.admins)
        self._domains = frozenset(check_domain(domain) for domain in settings.user_domains)

    def is_admin(self, jid: JID) -> bool:
        """``jid`` is one of the hospital's IT admins (``xmpp.admins``; IV.2)."""
        try:
            return bare_jid(jid.bare) in self._admins
        except InvalidJid:  # e.g. a server or component JID, which has no localpart
            return False

    def is_user(self, jid: JID) -> bool:
        """``jid`` belongs to one of the hospital's user domains (IV.2)."""
        return domain_of(jid.bare) in self._domains

    def may_run(self, jid: JID, *, admin_only: bool) -> bool:
        """Admin-only commands are for admins; the others for hospital users."""
        return self.is_admin(jid) if admin_only else self.is_user(jid)

    def guard(self, xmpp: Any, nodes: Mapping[str, bool]) -> None:
        """Keep the sessions of ``nodes`` (node -> admin only) with whoever started them."""

        def check(iq: Any) -> None:
            sessions: dict[str, dict[str, Any]] = xmpp.plugin["xep_0050"].sessions
            sessionid = iq["command"]["sessionid"]
            session = sessions.get(sessionid)
            # The session's own node counts: the continuing stanza may name any node.
            if session is None or session["node"] not in nodes:
                return
            admin_only = nodes[session["node"]]
            if (
                session["from"] != iq["from"]
                or iq["command"]["node"] != session["node"]
                or not self.may_run(iq["from"], admin_only=admin_only)
            ):
                log.warning(
                    "ad-hoc session continued by another JID; dropped",
                    extra={"command": session["node"]},
                )
                sessions.pop(sessionid, None)

        xmpp.add_event_handler("command", check)
