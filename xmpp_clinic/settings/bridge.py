"""``[bridge]``: the HIS bridge (I.6); off until configured."""

from __future__ import annotations

from xmpp_clinic.settings.base import Section


class BridgeSettings(Section):
    """The HIS bridge's HTTP API, HL7 v2 push and ADT listener (I.6)."""

    enabled: bool = False
    listen: str = "127.0.0.1:8787"
