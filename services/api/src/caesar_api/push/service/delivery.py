"""The delivery loop: every api process sends the deliveries that are due, each claimed first.

A pass reads the due deliveries, claims each with a lease (a guarded update, so two
replicas never send one delivery at once), signs and POSTs its body, and logs the
attempt in the delivery: delivered on a 2xx, else due again after the backoff, or failed
once its attempts are used up. New deliveries wake the loop of the process that made
them (:meth:`DeliveryLoop.kick`); the others find them on their next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from caesar_api.push.domain.backoff import RetryPolicy
from caesar_api.push.domain.hooks import DELIVERED, FAILED, PENDING, SendResult, attempt_entry
from caesar_api.push.domain.signing import signature
from caesar_api.push.metrics import WEBHOOK_ATTEMPTS
from caesar_common.logging import get_logger
from caesar_common.store import Document

log = get_logger(__name__)

USER_AGENT = "caesar-rest-webhooks/1"


class DeliveryStore(Protocol):
    async def due(self, now: datetime, limit: int) -> list[Document]: ...

    async def claim(self, delivery: Document, token: str, lease_until: datetime) -> bool: ...

    async def finish_attempt(
        self,
        delivery_id: str,
        token: str,
        attempt: Document,
        *,
        status: str,
        next_at: datetime | None,
        delivered_at: datetime | None = None,
    ) -> bool: ...

    async def cancel(self, delivery_id: str, token: str) -> None: ...


class HookReader(Protocol):
    async def get_any(self, hook_id: str) -> Document | None: ...


class Sender(Protocol):
    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult: ...


def delivery_headers(delivery: Document, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt (docs/api-v2.md, Webhooks)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Caesar-Event-Id": str(delivery["event_id"]),
        "X-Caesar-Hook-Id": str(delivery["hook_id"]),
        "X-Caesar-Timestamp": str(timestamp),
        "X-Caesar-Signature": signature(secret, timestamp, body),
    }


class DeliveryLoop:
    """Claims and sends due deliveries, ``concurrency`` at a time."""

    def __init__(
        self,
        deliveries: DeliveryStore,
        hooks: HookReader,
        sender: Sender,
        policy: RetryPolicy,
        *,
        lease: timedelta,
        concurrency: int,
        poll_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._deliveries = deliveries
        self._hooks = hooks
        self._sender = sender
        self._policy = policy
        self._lease = lease
        self._concurrency = concurrency
        self._poll_s = poll_s
        self._clock = clock
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """New deliveries were made in this process: look now, not at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Passes until cancelled; a failing pass (database away) is logged and retried."""
        while True:
            self._wake.clear()
            try:
                sent = await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the next pass retries
                log.warning("webhook delivery pass failed", error=repr(exc))
                sent = 0
            if sent:
                continue  # more may be due already
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def run_once(self) -> int:
        """One pass over the due deliveries; how many this process attempted."""
        due = await self._deliveries.due(self._clock(), self._concurrency * 4)
        if not due:
            return 0
        gate = asyncio.Semaphore(self._concurrency)

        async def one(delivery: Document) -> bool:
            async with gate:
                return await self.deliver(delivery)

        results = await asyncio.gather(*(one(d) for d in due))
        return sum(results)

    async def deliver(self, delivery: Document) -> bool:
        """Claim, send and log one delivery; ``False`` if another process claimed it first."""
        token = uuid.uuid4().hex
        now = self._clock()
        if not await self._deliveries.claim(delivery, token, now + self._lease):
            return False
        hook = await self._hooks.get_any(str(delivery["hook_id"]))
        if hook is None:
            await self._deliveries.cancel(str(delivery["_id"]), token)
            return True
        body = str(delivery["body"]).encode()
        timestamp = int(now.timestamp())
        result = await self._sender.send(
            str(hook["url"]), body, delivery_headers(delivery, str(hook["secret"]), timestamp, body)
        )
        finished = self._clock()
        entry = attempt_entry(
            now, status_code=result.status_code, error=result.error, duration_ms=result.duration_ms
        )
        made = len(delivery.get("attempts") or ()) + 1
        if result.ok:
            status, next_at = DELIVERED, None
        else:
            next_at = self._policy.next_attempt_at(made, finished)
            status = PENDING if next_at is not None else FAILED
        WEBHOOK_ATTEMPTS.labels(_outcome(result, status)).inc()
        log.info(
            "webhook attempt",
            hook_id=delivery["hook_id"],
            event_id=delivery["event_id"],
            attempt=made,
            status_code=result.status_code,
            error=result.error,
            outcome=status,
        )
        await self._deliveries.finish_attempt(
            str(delivery["_id"]),
            token,
            entry,
            status=status,
            next_at=next_at,
            delivered_at=finished if result.ok else None,
        )
        return True


def _outcome(result: SendResult, status: str) -> str:
    """The metric's label of an attempt."""
    if result.refused:
        return "refused"
    return {DELIVERED: "delivered", PENDING: "retry"}.get(status, "failed")
