"""The MLLP listener for ADT (``[bridge.adt] listen``): read, apply, acknowledge (I.6, I.7).

A01 admits a case (on a ward mapped in ``[bridge.adt.ward_threads]`` it also opens the
admission's case thread, :mod:`.wards`), A08 updates it, A40 moves a merged patient's
cases to the surviving number, A03 discharges it: the case's threads close (retention
starts) and documented ones are queued as MDM documents. Malformed messages get AR
with ERR naming the field; one that cannot be applied (A03 for an unknown visit, a
ward group missing from the directory) gets AE; both change nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from xmpp_clinic.bridge import hl7wire
from xmpp_clinic.bridge.adt import AdtEvent, AdtRefusal, ack, read
from xmpp_clinic.bridge.cases import CaseBook, CaseError
from xmpp_clinic.bridge.wards import WardThreads
from xmpp_clinic.settings.bridge import host_port
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.threads import InvalidThread, ThreadExists

log = logging.getLogger(__name__)
ACTOR = "hl7:adt"
OnClosed = Callable[[list[str]], Awaitable[None]]


class AdtListener:
    """Serve ADT over MLLP on ``listen``; ``on_closed`` gets the threads an A03 closed;
    ``ward_threads`` maps ward codes (PV1-3.1) to the directory groups of their staff."""

    def __init__(
        self,
        listen: str,
        store: Store,
        on_closed: OnClosed | None = None,
        ward_threads: Mapping[str, str] | None = None,
    ) -> None:
        self._address = host_port(listen)
        self._cases = CaseBook(store)
        self._wards = WardThreads(store, ward_threads or {}, actor=ACTOR)
        self._on_closed = on_closed
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await hl7wire.serve(*self._address, self.handle)

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle(self, text: str) -> str:
        """One message in, its ACK out."""
        checked = read(text)
        if isinstance(checked, AdtRefusal):
            log.warning(
                "bridge: ADT refused (%s-%s: error %s)",
                checked.segment,
                checked.field,
                checked.error,
            )
            return ack(
                text, "AR", control_id=checked.control_id, trigger=checked.trigger, refusal=checked
            )
        try:
            await self._apply(checked)
        except CaseError as exc:
            refusal = AdtRefusal(
                "AE", "PV1", 19, 204, str(exc), checked.control_id, checked.trigger
            )
            return ack(
                text, "AE", control_id=checked.control_id, trigger=checked.trigger, refusal=refusal
            )
        except (InvalidThread, ThreadExists) as exc:
            log.warning("bridge: ADT ward %s has no case thread: %s", checked.ward, exc)
            refusal = AdtRefusal(
                "AE", "PV1", 3, 207, f"ward {checked.ward}: {exc}", checked.control_id,
                checked.trigger,
            )  # fmt: skip
            return ack(
                text, "AE", control_id=checked.control_id, trigger=checked.trigger, refusal=refusal
            )
        except StoreUnavailable:
            refusal = AdtRefusal(
                "AE",
                "MSH",
                0,
                207,
                "store unavailable; send again",
                checked.control_id,
                checked.trigger,
            )
            return ack(
                text, "AE", control_id=checked.control_id, trigger=checked.trigger, refusal=refusal
            )
        return ack(text, "AA", control_id=checked.control_id, trigger=checked.trigger)

    async def _apply(self, event: AdtEvent) -> None:
        if event.trigger == "A01":
            # The thread first: a ward group missing from the directory changes nothing.
            await self._wards.open(event.visit, event.ward)
            await self._cases.admit(
                event.visit, event.patient, event.ward, at=event.at, actor=ACTOR
            )
        elif event.trigger == "A08":
            before = await self._cases.case(event.visit)
            if before is not None and event.ward and event.ward != before.ward:
                await self._wards.transfer(event.visit, before.ward, event.ward)
            await self._cases.update(event.visit, event.patient, event.ward, actor=ACTOR)
        elif event.trigger == "A40":
            await self._cases.merge(event.patient, event.merged_patient, actor=ACTOR)
        else:
            closed = await self._cases.discharge(event.visit, at=event.at, actor=ACTOR)
            if closed and self._on_closed is not None:
                await self._on_closed(closed)
