"""Fixtures shared by the integration tests of the services on the real broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import pytest
from pymongo import IndexModel

from caesar_common.bus import Bus
from caesar_common.runtime import ServiceRuntime
from caesar_common.settings import ServiceSettings
from tests.kube_support import kube_admin_config, kube_namespace

__all__ = ["kube_admin_config", "kube_namespace"]  # the test Kubernetes cluster's fixtures


@pytest.fixture
async def bus(amqp_url: str) -> AsyncIterator[Bus]:
    """A publisher on the test's own vhost."""
    b = Bus(amqp_url, "test")
    await b.connect()
    yield b
    await b.close()


class ServiceStarter(Protocol):
    async def __call__(
        self,
        name: str,
        settings: ServiceSettings,
        build: Callable[[ServiceRuntime[Any]], Awaitable[object]],
        *,
        indexes: Mapping[str, Sequence[IndexModel]],
        outbox_collections: Sequence[str] = (),
    ) -> ServiceRuntime[Any]: ...


@pytest.fixture
async def start_service() -> AsyncIterator[ServiceStarter]:
    """Start a service in this process as ``run_service`` does (minus HTTP); stop it after.

    ``settings`` must point at the test's vhost and database prefix; ``build`` is the
    service's bootstrap. The runtime is marked ready, so its HTTP handlers answer.
    """
    started: list[ServiceRuntime[Any]] = []

    async def start(
        name: str,
        settings: ServiceSettings,
        build: Callable[[ServiceRuntime[Any]], Awaitable[object]],
        *,
        indexes: Mapping[str, Sequence[IndexModel]],
        outbox_collections: Sequence[str] = (),
    ) -> ServiceRuntime[Any]:
        runtime: ServiceRuntime[Any] = ServiceRuntime(
            name, settings, indexes=indexes, outbox_collections=outbox_collections
        )
        await runtime.connect()
        started.append(runtime)
        await build(runtime)
        runtime.ready = True
        return runtime

    yield start
    for runtime in started:
        await runtime.shutdown(grace_s=5)
