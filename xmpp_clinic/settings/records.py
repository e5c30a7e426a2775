"""``[records]``: the documentation member of documented threads (I.6)."""

from __future__ import annotations

from xmpp_clinic.settings.base import Section


class RecordsSettings(Section):
    """The announced documentation device and its key file (I.6, II.1)."""
