"""HL7 v2 over MLLP with the ``hl7`` package (its asyncio MLLP client and server) (I.6).

Why ``hl7`` and not hl7apy: it ships an asyncio MLLP client and server that run in the
gateway's event loop, and a small parser whose containers are enough for the segments
we read (MSH, EVN, PID, PV1, MRG, MSA, ERR); hl7apy's MLLP server is thread-based
(``socketserver``) and its profile validation is more than the bridge needs. ``hl7``
is untyped, so this module is the only one that touches it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import hl7  # type: ignore[import-untyped]
from hl7.mllp import (  # type: ignore[import-untyped]
    InvalidBlockError,
    open_hl7_connection,
    start_hl7_server,
)

SEGMENT_END = "\r"
ENCODING = "utf-8"
MAX_BLOCK = 4 * 1024 * 1024  # a transcript of a long thread, with margin


@dataclass(frozen=True)
class Ack:
    """The HIS's answer: MSA-1 code (AA, AE, AR; CA/CE/CR in enhanced mode), MSA-3 text."""

    code: str
    text: str
    control_id: str

    @property
    def accepted(self) -> bool:
        return self.code in ("AA", "CA")


def escape(text: str) -> str:
    """One line of ``text`` safe inside an HL7 field (``|^~\\&`` escaped; breaks: spaces)."""
    container = hl7.parse("MSH|^~\\&|X")
    return str(container.escape(" ".join(text.splitlines())))


def parse(text: str) -> object:
    """A parsed message (``hl7.Message``); ValueError-like errors for non-HL7 text."""
    return hl7.parse(text)


async def send(host: str, port: int, message: str, timeout: float) -> Ack:
    """Send one message over MLLP and wait for its ACK (OSError / TimeoutError on failure)."""

    async def exchange() -> Ack:
        reader, writer = await open_hl7_connection(host, port, encoding=ENCODING, limit=MAX_BLOCK)
        try:
            writer.writemessage(hl7.parse(message))
            await writer.drain()
            reply = await reader.readmessage()
        finally:
            writer.close()
        msa = reply.segment("MSA")
        return Ack(str(msa(1)), str(msa(3)) if len(msa) > 3 else "", str(msa(2)))

    return await asyncio.wait_for(exchange(), timeout)


Handler = Callable[[str], Awaitable[str]]


async def serve(host: str, port: int, handler: Handler) -> asyncio.Server:
    """An MLLP listener: each block is decoded, handed to ``handler``, its reply sent back."""

    async def connected(reader: object, writer: object) -> None:
        try:
            while True:
                block = await reader.readblock()  # type: ignore[attr-defined]
                reply = await handler(block.decode(ENCODING, "replace"))
                writer.writeblock(reply.encode(ENCODING))  # type: ignore[attr-defined]
                await writer.drain()  # type: ignore[attr-defined]
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except InvalidBlockError:
            pass  # not MLLP framing: this connection ends, the listener stays
        finally:
            writer.close()  # type: ignore[attr-defined]

    server: asyncio.Server = await start_hl7_server(
        connected, host, port, encoding=ENCODING, limit=MAX_BLOCK
    )
    return server
