"""xmpp-clinic: a compliance gateway for clinical messaging over XMPP."""

__version__ = "0.1.0"
