"""The compliance pipeline: pure decisions over plain data, one check per module."""

from xmpp_clinic.policy.verdict import Action, MessageContext, MessagePolicy, Verdict

__all__ = ["Action", "MessageContext", "MessagePolicy", "Verdict"]
