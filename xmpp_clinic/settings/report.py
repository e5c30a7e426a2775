"""``[clients]`` and ``[report]``: client versions and the compliance report (I.11, I.13)."""

from __future__ import annotations

from xmpp_clinic.settings.base import Section


class ClientsSettings(Section):
    """Minimum client versions and what happens to outdated ones (I.13, III.2, IV.9)."""


class ReportSettings(Section):
    """The compliance report saved on a schedule (IV.4)."""
