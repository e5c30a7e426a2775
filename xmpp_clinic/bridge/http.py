"""The API served by uvicorn inside the gateway's event loop (I.6).

Optional mutual TLS: with ``tls_client_ca`` (the hospital CA, ``certs/``) set, uvicorn
requires a client certificate signed by it; the bearer token still decides what the
caller may read.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from xmpp_clinic.bridge.api import BridgeContext, create_app
from xmpp_clinic.settings.bridge import BridgeSettings, host_port


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the gateway (or the CLI) owns them."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpBridge:
    """Start and stop the API on ``[bridge] listen``."""

    def __init__(self, settings: BridgeSettings, ctx: BridgeContext) -> None:
        host, port = host_port(settings.listen)
        options: dict[str, Any] = {}
        if settings.tls_cert is not None:
            options["ssl_certfile"] = str(settings.tls_cert)
            options["ssl_keyfile"] = str(settings.tls_key) if settings.tls_key else None
            if settings.tls_client_ca is not None:
                options["ssl_ca_certs"] = str(settings.tls_client_ca)
                options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        config = uvicorn.Config(
            create_app(ctx),
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            access_log=False,  # paths carry thread names; the audit log is the access log
            **options,
        )
        self._address = (host, port)
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        """Serve; returns once the socket listens (OSError if it cannot bind).

        The socket is bound here, not by uvicorn, whose bind failure exits the process.
        """
        host, port = self._address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self._socket = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="bridge-http")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError("the bridge's HTTP server did not start")
            await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._socket is not None, "not started"
        return int(self._socket.getsockname()[1])

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
