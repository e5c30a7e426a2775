"""``[parts]`` and ``[delivery]``: message completeness (II.2).

A sender may split one message into a part set ("part x of y", ``urn:xmpp-clinic:parts:0``);
the gateway checks every marker, keeps each set's state in the store, and posts a
content-free notice into the thread when a set is still incomplete after
``timeout_seconds``. ``max_part_bytes`` is where the project's own senders
(``xmpp_clinic.client``, the demo phones) split a text.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from xmpp_clinic.settings.base import Section


class PartsSettings(Section):
    """Part sets ("part x of y") and missing-part notices (II.2)."""

    # The largest y a marker may name: bounds the state a sender can make the gateway keep.
    max_parts: Annotated[int, Field(ge=2, le=1000)] = 50
    # How long after a set's first part its missing parts are announced in the thread.
    timeout_seconds: Annotated[float, Field(gt=0, le=86400)] = 120.0
    # Where our own senders split a text (UTF-8 bytes of one part's plaintext).
    max_part_bytes: Annotated[int, Field(ge=256, le=1_000_000)] = 4000


class DeliverySettings(Section):
    """Delivery tracking and not-delivered notices (II.2)."""

    # A member who has neither received nor fetched a message for this long is told once.
    notify_after_minutes: Annotated[float, Field(gt=0, le=10080)] = 30
