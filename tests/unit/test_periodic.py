"""Background rounds stop between rounds, never in the middle of a store write (II.2)."""

from __future__ import annotations

import asyncio
import time

import pytest

from xmpp_clinic.periodic import Periodic

pytestmark = pytest.mark.requirement("II.2")


async def test_rounds_repeat_and_a_failing_round_does_not_end_the_schedule() -> None:
    rounds: list[int] = []

    async def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("one bad round")

    loop = Periodic(work, lambda: 0.01, name="test rounds")
    loop.start()
    while len(rounds) < 3:
        await asyncio.sleep(0.01)
    await loop.stop()
    assert not loop.running


async def test_stop_lets_a_round_in_progress_finish_its_write() -> None:
    started, saved = asyncio.Event(), []

    async def work() -> None:
        started.set()
        await asyncio.sleep(0.2)  # e.g. the store write that records a posted notice
        saved.append(True)

    loop = Periodic(work, lambda: 0.0, name="test write")
    loop.start()
    await started.wait()
    await loop.stop()
    assert saved == [True]


async def test_stop_cancels_a_waiting_loop_at_once_and_wake_runs_a_round_now() -> None:
    rounds: list[float] = []

    async def work() -> None:
        rounds.append(time.monotonic())

    loop = Periodic(work, lambda: 3600.0, name="test wake")
    loop.start()
    await asyncio.sleep(0.05)
    assert rounds == []
    loop.wake()
    while not rounds:
        await asyncio.sleep(0.01)
    began = time.monotonic()
    await loop.stop()
    assert time.monotonic() - began < 1.0 and len(rounds) == 1


async def test_a_stuck_round_is_cancelled_after_the_grace() -> None:
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.sleep(3600)

    loop = Periodic(work, lambda: 0.0, name="test stuck")
    loop.start()
    await started.wait()
    began = time.monotonic()
    await loop.stop(grace=0.1)
    assert time.monotonic() - began < 1.0
