"""Fetching documented attachments from the hospital's upload service (I.6, I.10, I.12).

After a documented message's copy is stored (with its links as pending attachments),
the gate hands the copy to :class:`AttachmentFetcher`, which runs apart from the relay:
at most ``[records] attachment_fetches`` downloads at a time, each bounded by
``attachment_timeout_seconds`` and ``max_attachment_bytes``. A link goes out only to a
host in ``[records] attachment_hosts`` (the hospital network; no redirects followed, no
proxy from the environment). The file is decrypted (``aesgcm.py``), checked and cleaned
(``vetting.py``) and stored; anything else becomes an attachment gap with its reason.
The message itself was relayed and documented before any of this began, so a failed
fetch never costs a message. Attachments still pending at a start (the gateway stopped
mid-fetch) are fetched then.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

import httpx

from xmpp_clinic.records.aesgcm import TAG_BYTES, AesgcmLink, AttachmentRefused, decrypt, parse_link
from xmpp_clinic.records.documentation import Documentation
from xmpp_clinic.records.vetting import VettedFile, vet
from xmpp_clinic.settings.records import RecordsSettings
from xmpp_clinic.store import StoreUnavailable

log = logging.getLogger(__name__)

# Copies waiting for a fetch at once; beyond, their attachments stay pending (in the
# store, so nothing is lost) and are fetched at the next start.
MAX_QUEUED = 256


@dataclass(frozen=True)
class AllowedHost:
    """One ``attachment_hosts`` entry: a host, maybe a port, and whether HTTP is allowed."""

    host: str
    port: int | None
    plain_http: bool

    @classmethod
    def parse(cls, entry: str) -> AllowedHost:
        plain = entry.startswith("http://")
        rest = entry.removeprefix("http://")
        host, _, port = rest.partition(":")
        return cls(host.lower(), int(port) if port else None, plain)

    def admits(self, link: AesgcmLink) -> bool:
        return link.host == self.host and (self.port is None or link.port == self.port)


def target(link: AesgcmLink, allowed: list[AllowedHost]) -> str:
    """The HTTP(S) address to fetch ``link`` from; AttachmentRefused("host-not-allowed")
    unless its host is listed (I.12: the gateway reaches only the hospital's service)."""
    entry = next((a for a in allowed if a.admits(link)), None)
    if entry is None:
        raise AttachmentRefused("host-not-allowed", link.host)
    scheme = "http" if entry.plain_http else "https"
    port = f":{link.port}" if link.port is not None else ""
    return f"{scheme}://{link.host}{port}{link.path}"


class AttachmentFetcher:
    """Fetches, decrypts, checks and stores documented attachments in the background."""

    def __init__(
        self,
        documentation: Documentation,
        settings: RecordsSettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.documentation = documentation
        self.settings = settings
        self._allowed = [AllowedHost.parse(h) for h in settings.attachment_hosts]
        self._limit = asyncio.Semaphore(settings.attachment_fetches)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, thread: str, position: int) -> None:
        """Fetch the pending attachments of one copy, soon, without waiting for it."""
        if len(self._tasks) >= MAX_QUEUED:
            log.warning("attachment fetches queued up; left pending", extra={"copy": position})
            return
        task = asyncio.get_running_loop().create_task(self._copy(thread, position))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self) -> int:
        """Schedule every attachment left pending by an earlier run; how many copies."""
        pending = await self.documentation.pending_attachments()
        for thread, position in pending:
            self.schedule(thread, position)
        return len(pending)

    async def drain(self) -> None:
        """Wait for the fetches under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            if self.settings.attachment_ca_file is not None:
                verify = ssl.create_default_context(cafile=str(self.settings.attachment_ca_file))
            self._client = httpx.AsyncClient(
                transport=self._transport,
                verify=verify,
                timeout=self.settings.attachment_timeout_seconds,
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def _copy(self, thread: str, position: int) -> None:
        try:
            links = await self.documentation.pending_links(thread, position)
            for number, url in links:
                async with self._limit:
                    outcome = await self.fetch(url)
                await self.documentation.settle_attachment(thread, position, number, outcome)
        except StoreUnavailable:
            log.warning("attachment left pending: store unavailable", extra={"copy": position})
        except Exception:
            log.exception("attachment left pending", extra={"copy": position})

    async def fetch(self, url: str) -> VettedFile | str:
        """The cleaned file behind ``url``, or the reason it is a gap (never raises for
        anything the link, the network or the file does)."""
        try:
            link = parse_link(url)
            address = target(link, self._allowed)
            ciphertext = await asyncio.wait_for(
                self._download(address), self.settings.attachment_timeout_seconds
            )
            plaintext = decrypt(link, ciphertext)
            return await asyncio.to_thread(
                vet, plaintext, self.settings.attachment_types, self.settings.max_attachment_bytes
            )
        except AttachmentRefused as refused:
            log.info("attachment not documented", extra={"reason": refused.reason})
            return refused.reason
        except (TimeoutError, httpx.TimeoutException):
            return "fetch-timeout"
        except httpx.HTTPError as exc:
            log.info("attachment not fetched", extra={"why": type(exc).__name__})
            return "fetch-failed"
        except Exception as exc:  # the sender's data must never break the fetcher
            log.warning("attachment not documented", extra={"why": type(exc).__name__})
            return "unreadable"

    async def _download(self, address: str) -> bytes:
        limit = self.settings.max_attachment_bytes + TAG_BYTES
        async with self._http().stream("GET", address) as response:
            if response.status_code != 200:
                raise AttachmentRefused(f"fetch-failed (HTTP {response.status_code})")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise AttachmentRefused("too-large", declared)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise AttachmentRefused("too-large", f"over {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
