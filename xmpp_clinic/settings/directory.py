"""``[directory]``: the hospital directory as the source of membership (IV.2, I.3).

The section is optional: without it the gateway runs in the small deployment mode
(members typed in by hand), which check-config and the report name as a weaker control.
"""

from __future__ import annotations

from xmpp_clinic.settings.base import Section


class DirectorySettings(Section):
    """Where persons and groups come from (CSV import, LDAP / Active Directory sync)."""
