"""The dev servers' slixmpp bots, for tests: :mod:`xmpp_clinic.dev.bots` (one copy)."""

from __future__ import annotations

from xmpp_clinic.dev.bots import (
    CONNECT_TIMEOUT,
    DEFAULT_PLUGINS,
    BotLoginError,
    connect_bot,
    disconnect_bot,
    make_bot,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_PLUGINS",
    "BotLoginError",
    "connect_bot",
    "disconnect_bot",
    "make_bot",
]
