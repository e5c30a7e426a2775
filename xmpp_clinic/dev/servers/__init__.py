"""Private Prosody or ejabberd servers on loopback for tests, the demo and benchmarks.

>>> with start_server("prosody", Path("/tmp/run")) as server:  # doctest: +SKIP
...     server.register("alice", "secret")
"""

from __future__ import annotations

from pathlib import Path

from .base import DevServer, DevServerError, ServerKind
from .ejabberd import EjabberdServer
from .gateway_config import write_gateway_config
from .ports import free_port
from .prosody import ProsodyServer

__all__ = [
    "DevServer",
    "DevServerError",
    "EjabberdServer",
    "ProsodyServer",
    "ServerKind",
    "free_port",
    "make_server",
    "start_server",
    "write_gateway_config",
]

_CLASSES: dict[str, type[ProsodyServer] | type[EjabberdServer]] = {
    "prosody": ProsodyServer,
    "ejabberd": EjabberdServer,
}


def make_server(
    kind: ServerKind,
    run_dir: Path,
    *,
    domain: str = "hospital.test",
    component_jid: str = "clinic.hospital.test",
    secret: str | None = None,
) -> DevServer:
    """Construct (without starting) a ``kind`` server keeping its files under ``run_dir``."""
    try:
        cls = _CLASSES[kind]
    except KeyError:
        raise DevServerError(f"unknown server kind {kind!r}; use 'prosody' or 'ejabberd'") from None
    server = cls(run_dir=Path(run_dir), domain=domain, component_jid=component_jid)
    if secret is not None:
        server.component_secret = secret
    return server


def start_server(
    kind: ServerKind,
    run_dir: Path,
    *,
    domain: str = "hospital.test",
    component_jid: str = "clinic.hospital.test",
    secret: str | None = None,
) -> DevServer:
    """Construct and start a ``kind`` server; the caller stops it (or uses ``with``)."""
    server = make_server(kind, run_dir, domain=domain, component_jid=component_jid, secret=secret)
    server.start()
    return server
