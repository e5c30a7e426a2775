"""slixmpp clients logged in to a :class:`~xmpp_clinic.dev.servers.DevServer` over plaintext.

Used by the demo's phones, the integration tests and the benchmarks. Development only:
the c2s port of the dev servers is plaintext on loopback, so the bots turn off TLS and
allow SCRAM over an unencrypted stream (``unencrypted_scram``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from slixmpp import BaseXMPP, ClientXMPP

from .servers import DevServer

DEFAULT_PLUGINS: tuple[str, ...] = ("xep_0030", "xep_0199")
CONNECT_TIMEOUT = 30.0
DISCONNECT_WAIT = 2.0


class BotLoginError(RuntimeError):
    """A bot could not connect or authenticate."""


def make_bot(
    jid: str, password: str, server: DevServer, *, plugins: Iterable[str] = DEFAULT_PLUGINS
) -> ClientXMPP:
    """Return an unconnected bot with the plaintext loopback settings and ``plugins``."""
    bot = ClientXMPP(jid, password)
    for plugin in plugins:
        bot.register_plugin(plugin)
    bot.enable_direct_tls = False  # with an explicit port slixmpp tries direct TLS first
    bot.enable_starttls = False
    bot.enable_plaintext = True
    bot.plugin["feature_mechanisms"].unencrypted_scram = True
    if server.kind == "ejabberd":
        bot.auto_authorize = None  # else test bots fill each other's rosters
        bot.auto_subscribe = False
    return bot


async def connect_bot(
    jid: str,
    password: str,
    server: DevServer,
    *,
    plugins: Iterable[str] = DEFAULT_PLUGINS,
    timeout: float = CONNECT_TIMEOUT,
    send_presence: bool = True,
) -> ClientXMPP:
    """Connect a bot to ``server``'s c2s port; return it once the session has started.

    With ``send_presence`` the bot fetches its roster and sends initial presence, so
    messages to its bare JID are delivered to it rather than stored offline.
    """
    bot = make_bot(jid, password, server, plugins=plugins)
    outcome = await _session_outcome(bot, server, timeout)
    if outcome is not None:
        bot.abort()
        await _stop_send_loop(bot)
        raise BotLoginError(f"{jid} could not log in to {server.kind}: {outcome}")
    if send_presence:
        await bot.get_roster(timeout=timeout)
        bot.send_presence()
    return bot


async def _session_outcome(bot: ClientXMPP, server: DevServer, timeout: float) -> str | None:
    """Connect and wait for ``session_start``; return None or why it failed."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[str | None] = loop.create_future()

    def settle(value: str | None) -> None:
        if not result.done():
            result.set_result(value)

    handlers: dict[str, Any] = {
        "session_start": lambda _event: settle(None),
        "failed_all_auth": lambda _event: settle("authentication failed"),
        "connection_failed": lambda error: settle(f"connection failed: {error}"),
    }
    for event, handler in handlers.items():
        bot.add_event_handler(event, handler)
    try:
        bot.connect(server.host, server.c2s_port)
        return await asyncio.wait_for(result, timeout)
    except TimeoutError:
        return f"no session after {timeout:.0f} s"
    finally:
        for event, handler in handlers.items():
            bot.del_event_handler(event, handler)


async def disconnect_bot(bot: BaseXMPP, *, wait: float = DISCONNECT_WAIT) -> None:
    """Close the bot's (or a component's) stream, waiting at most ``wait`` s for the server."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(bot.disconnect(wait=wait), wait + 1.0)
    if bot.transport is not None:
        bot.abort()
    await _stop_send_loop(bot)


async def _stop_send_loop(bot: BaseXMPP) -> None:
    """End slixmpp's background send task now (a later ``connect()`` starts a new one).

    Left to the garbage collector, it is cancelled in ``__del__`` and asyncio logs "Task was
    destroyed but it is pending!" for every bot.
    """
    task = getattr(bot, "_run_out_filters", None)
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
