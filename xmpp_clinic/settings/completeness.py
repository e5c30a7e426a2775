"""``[parts]`` and ``[delivery]``: message completeness (II.2)."""

from __future__ import annotations

from xmpp_clinic.settings.base import Section


class PartsSettings(Section):
    """Part sets ("part x of y") and missing-part notices (II.2)."""


class DeliverySettings(Section):
    """Delivery tracking and not-delivered notices (II.2)."""
