"""Background tasks stop at shutdown even when a cancel is swallowed on the way."""

from __future__ import annotations

import asyncio

from caesar_common.periodic import run_every
from caesar_common.runtime import stop_tasks


async def test_a_task_that_swallows_the_first_cancel_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # as a client library converting it into a result would
        await asyncio.Event().wait()  # the next cancel ends it here

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await stop_tasks([task], grace_s=5, again_s=0.01)
    assert swallowed.is_set()
    assert task.cancelled()


async def test_a_task_that_never_stops_is_left_after_the_grace() -> None:
    listening = False

    async def deaf() -> None:
        while not listening:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf())
    await asyncio.sleep(0)
    await stop_tasks([task], grace_s=0.05, again_s=0.01)
    assert not task.done()  # the stop gave up instead of hanging
    listening = True
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.done()


async def test_a_periodic_task_stops_when_its_action_turns_the_cancel_into_an_error() -> None:
    passes = 0
    entered = asyncio.Event()

    async def action() -> None:
        nonlocal passes
        passes += 1
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("channel closed") from None  # what some clients do

    task = asyncio.create_task(run_every(0.001, action, "test", first_after_s=0))
    await entered.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert task in done
    assert task.cancelled()
    assert passes == 1
