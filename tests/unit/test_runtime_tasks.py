"""The service runtime watches its background tasks (no broker or database needed)."""

from __future__ import annotations

import asyncio

from caesar_common.runtime import ServiceRuntime
from caesar_common.settings import ServiceSettings

# Nothing listens here: the runtime must not try to connect for these tests.
SETTINGS = ServiceSettings(
    amqp_url="amqp://guest:guest@127.0.0.1:1/", mongo_url="mongodb://127.0.0.1:1/?retryWrites=false"
)


async def _fails() -> None:
    raise RuntimeError("resume failed")


async def test_a_failed_essential_task_stops_the_service() -> None:
    runtime = ServiceRuntime("probe", SETTINGS, indexes={})
    task = runtime.spawn(_fails(), "resume")
    await asyncio.wait({task})
    await asyncio.wait_for(runtime.wait_stopped(), 5)
    assert isinstance(runtime.failure, RuntimeError)
    await runtime.mongo.close()


async def test_a_failed_optional_task_is_logged_only() -> None:
    runtime = ServiceRuntime("probe", SETTINGS, indexes={})
    task = runtime.spawn(_fails(), "refresh", essential=False)
    await asyncio.wait({task})
    assert runtime.failure is None
    await runtime.mongo.close()


async def test_a_cancelled_task_is_not_a_failure() -> None:
    runtime = ServiceRuntime("probe", SETTINGS, indexes={})
    task = runtime.spawn(asyncio.Event().wait(), "loop")
    task.cancel()
    await asyncio.wait({task})
    assert runtime.failure is None
    await runtime.mongo.close()
