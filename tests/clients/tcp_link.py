"""A loopback TCP relay a test can cut, as a mobile network drops a connection.

Profanity connects to the relay instead of the server. :meth:`TcpLink.cut` closes every
relayed connection on both sides at once without a closing ``</stream>``: the server
sees a dead client (and, with stream management, keeps the session for resumption);
the client sees its socket die and reconnects. That is the path on which a client
re-sends its room joins while the room still counts it as present (issue 9, point 4).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
CHUNK = 65536


@dataclass
class TcpLink:
    """Relays ``LOOPBACK:port`` to ``target_host:target_port`` until :meth:`close`."""

    target_host: str
    target_port: int
    connections: int = 0  # accepted so far
    _server: asyncio.Server | None = field(default=None, init=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, init=False)
    _pumps: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    @property
    def port(self) -> int:
        """The relay's listening port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("TcpLink.start() first")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(source, sink))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()
        self._drop(sink)

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
        with contextlib.suppress(OSError, RuntimeError):
            writer.transport.abort()  # no FIN handshake, no buffered data: a dead link

    def cut(self) -> int:
        """Abort every relayed connection now; the number of sockets aborted."""
        writers = list(self._writers)
        for writer in writers:
            self._drop(writer)
        return len(writers)

    async def close(self) -> None:
        """Stop listening and cut what is left."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.cut()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
