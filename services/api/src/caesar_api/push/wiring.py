"""Push's parts for one api process, built once from its runtime.

The HTTP app and the consumer each build their :class:`~caesar_api.dependencies.Dependencies`
from the same runtime, but both must share one hub (the feed fills what the routes
read) and one delivery loop (the consumer kicks what the loop sends), so the parts are
made once per runtime and handed to both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from caesar_api.domain.responses import job_v2
from caesar_api.push.adapters.feed import PushFeed
from caesar_api.push.adapters.history import JobHistory
from caesar_api.push.adapters.hooks_repo import (
    DELIVERIES,
    DELIVERY_INDEXES,
    WEBHOOK_INDEXES,
    WEBHOOKS,
    DeliveriesRepository,
    HooksRepository,
)
from caesar_api.push.adapters.sender import WebhookSender
from caesar_api.push.domain.backoff import RetryPolicy
from caesar_api.push.service.delivery import DeliveryLoop
from caesar_api.push.service.fanout import create_deliveries
from caesar_api.push.service.hub import PushHub
from caesar_api.push.service.streams import StreamLimits
from caesar_api.settings import ApiSettings
from caesar_common.events import JobStateChanged
from caesar_common.runtime import ServiceRuntime

PUSH_INDEXES = {WEBHOOKS: WEBHOOK_INDEXES, DELIVERIES: DELIVERY_INDEXES}
"""The collections push adds to the api's database, with their indexes."""


@dataclass(frozen=True)
class Push:
    """The hub, the history reads, hooks and deliveries, the sender and the delivery loop."""

    settings: ApiSettings
    hub: PushHub
    history: JobHistory
    hooks: HooksRepository
    deliveries: DeliveriesRepository
    sender: WebhookSender
    loop: DeliveryLoop

    @property
    def limits(self) -> StreamLimits:
        return StreamLimits(self.settings.sse_heartbeat_s, self.settings.sse_max_stream_s)


_PARTS: WeakKeyDictionary[ServiceRuntime[Any], Push] = WeakKeyDictionary()


def push_of(runtime: ServiceRuntime[ApiSettings]) -> Push:
    """This runtime's push parts (made on first use)."""
    parts = _PARTS.get(runtime)
    if parts is None:
        parts = _PARTS[runtime] = make_push(runtime)
    return parts


def make_push(runtime: ServiceRuntime[ApiSettings]) -> Push:
    settings = runtime.settings
    hooks = HooksRepository(runtime.collection(WEBHOOKS))
    deliveries = DeliveriesRepository(runtime.collection(DELIVERIES))
    sender = WebhookSender(
        allow_private=settings.webhooks_allow_private, timeout_s=settings.webhook_timeout_s
    )
    policy = RetryPolicy(
        settings.webhook_max_attempts, settings.webhook_retry_base_s, settings.webhook_retry_max_s
    )
    loop = DeliveryLoop(
        deliveries,
        hooks,
        sender,
        policy,
        # Longer than any attempt can take, so a claim outlives the attempt it covers.
        lease=timedelta(seconds=settings.webhook_timeout_s * 2 + 30),
        concurrency=settings.webhook_concurrency,
        poll_s=settings.webhook_poll_s,
    )
    return Push(
        settings=settings,
        hub=PushHub(
            max_streams_per_owner=settings.sse_max_streams_per_user, queue_size=settings.sse_queue_size
        ),
        history=JobHistory(runtime.collection("jobs")),
        hooks=hooks,
        deliveries=deliveries,
        sender=sender,
        loop=loop,
    )


async def start_push(runtime: ServiceRuntime[ApiSettings], push: Push) -> PushFeed:
    """Consume this process's push queue and run its delivery loop (once connected)."""
    feed = PushFeed(runtime.bus, push.hub, max_length=runtime.settings.push_queue_max_length)
    await feed.start()
    runtime.spawn(_deliver(push), "webhook-deliveries")
    return feed


async def _deliver(push: Push) -> None:
    try:
        await push.loop.run()
    finally:
        await push.sender.aclose()


async def after_projection(push: Push, events: Sequence[JobStateChanged]) -> None:
    """Make the webhook deliveries of a projected batch, and wake the loop if there are new ones."""
    made = await create_deliveries(
        events,
        hooks=push.hooks,
        deliveries=push.deliveries,
        jobs=push.history,
        now=datetime.now(UTC),
        render=job_v2,
    )
    if made:
        push.loop.kick()
