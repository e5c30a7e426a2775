"""The compliance pipeline: pure decisions over plain data, one check per module.

:func:`check_shape` bounds a stanza's depth and size before anything copies it; the
relay and the room host call it first on every stanza from a client (I.12).
"""

from xmpp_clinic.policy.shape import check_shape
from xmpp_clinic.policy.verdict import Action, MessageContext, MessagePolicy, Verdict

__all__ = ["Action", "MessageContext", "MessagePolicy", "Verdict", "check_shape"]
