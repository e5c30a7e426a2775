"""Test-side access to a running gateway's device registry (I.4, I.5).

Tests approve and revoke through the CLI as operators do; these helpers only wait for
discovery to finish, and register OMEMO 2 devices whose public data the tests keep
in process (tests/helpers/twomemo.py) rather than in PEP.
"""

from __future__ import annotations

import asyncio
from typing import Any

from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS
from xmpp_clinic.registry.model import Device, ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry


async def wait_for_device(
    registry: DeviceRegistry,
    jid: str,
    device_id: int,
    *,
    namespace: str = LEGACY_NS,
    timeout: float = 30.0,
) -> Device:
    """The device once discovery has recorded it (it runs when a member joins a thread).

    Wakes up whenever the registry has applied a device list (``observe``), rather than
    polling the store on a timer.
    """
    observed = asyncio.Event()
    observe = registry.observe

    async def observe_and_tell(*args: Any, **kwargs: Any) -> list[Device]:
        try:
            return await observe(*args, **kwargs)
        finally:
            observed.set()

    registry.observe = observe_and_tell  # type: ignore[method-assign]
    try:
        async with asyncio.timeout(timeout):
            while True:
                observed.clear()  # before looking: a list applied meanwhile wakes us
                for device in await registry.devices(jid):
                    if device.device_id == device_id and device.namespace == namespace:
                        return device
                await observed.wait()
    except TimeoutError:
        raise AssertionError(
            f"device {device_id} of {jid} was not discovered in {timeout}s"
        ) from None
    finally:
        del registry.observe  # the instance attribute; the method shows through again


async def register_omemo2(
    registry: DeviceRegistry, jid: str, device_id: int, identity_key: bytes
) -> Device:
    """Record an OMEMO 2 device as discovery would have found it in PEP.

    The state follows ``policy.device_approval`` like any discovered device.
    """
    listed = {
        device.device_id: ObservedDevice(device.label, device.identity_key)
        for device in await registry.devices(jid)
        if device.namespace == OMEMO2_NS and device.active
    }
    listed[device_id] = ObservedDevice(None, identity_key)
    await registry.observe(jid, OMEMO2_NS, listed)
    return await registry.device(jid, device_id, OMEMO2_NS)
