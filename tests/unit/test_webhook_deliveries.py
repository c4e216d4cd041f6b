"""Webhook use cases with in-memory fakes: registration, the deliveries a batch makes, the loop."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from caesar_api.adapters.pagination import Page
from caesar_api.domain.errors import ApiError
from caesar_api.domain.v2_requests import InvalidBody
from caesar_api.push.domain.backoff import RetryPolicy
from caesar_api.push.domain.hooks import (
    CANCELED,
    DELIVERED,
    FAILED,
    PENDING,
    SendResult,
    delivery_id,
    delivery_view,
    hook_view,
    parse_hook_request,
)
from caesar_api.push.domain.signing import verify
from caesar_api.push.service import registration
from caesar_api.push.service.delivery import DeliveryLoop
from caesar_api.push.service.fanout import create_deliveries
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobState
from caesar_common.store import Document

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
JOB = "0f0e0d0c-0b0a-4000-8000-000000000001"
OTHER_JOB = "0f0e0d0c-0b0a-4000-8000-000000000002"


class FakeHooks:
    def __init__(self) -> None:
        self.records: dict[str, Document] = {}

    async def add(self, record: Document) -> None:
        self.records[record["_id"]] = copy.deepcopy(record)

    async def count(self, owner: str) -> int:
        return sum(h["owner"] == owner for h in self.records.values())

    async def get(self, owner: str, hook_id: str) -> Document | None:
        hook = self.records.get(hook_id)
        return copy.deepcopy(hook) if hook and hook["owner"] == owner else None

    async def get_any(self, hook_id: str) -> Document | None:
        return copy.deepcopy(self.records.get(hook_id))

    async def page(self, owner: str, limit: int, after: Document | None) -> Page:
        mine = [h for h in self.records.values() if h["owner"] == owner]
        return Page(mine[:limit], more=len(mine) > limit)

    async def delete(self, hook: Document) -> bool:
        return self.records.pop(hook["_id"], None) is not None

    async def of_owners(self, owners: Iterable[str]) -> list[Document]:
        wanted = set(owners)
        return [copy.deepcopy(h) for h in self.records.values() if h["owner"] in wanted]


class FakeDeliveries:
    """Deliveries in memory; claims and finishes guarded as the repository guards them."""

    def __init__(self) -> None:
        self.records: dict[str, Document] = {}

    async def add_many(self, records: Sequence[Document]) -> int:
        new = 0
        for record in records:
            if record["_id"] not in self.records:
                self.records[record["_id"]] = copy.deepcopy(record)
                new += 1
        return new

    async def due(self, now: datetime, limit: int) -> list[Document]:
        due = [d for d in self.records.values() if d["status"] == PENDING and d["next_at"] <= now]
        return copy.deepcopy(sorted(due, key=lambda d: d["next_at"])[:limit])

    async def claim(self, delivery: Document, token: str, lease_until: datetime) -> bool:
        stored = self.records[delivery["_id"]]
        if stored["status"] != PENDING or stored["next_at"] != delivery["next_at"]:
            return False
        stored.update(next_at=lease_until, claim=token)
        return True

    async def finish_attempt(
        self,
        delivery_id: str,
        token: str,
        attempt: Document,
        *,
        status: str,
        next_at: datetime | None,
        delivered_at: datetime | None = None,
    ) -> bool:
        stored = self.records[delivery_id]
        if stored["status"] != PENDING or stored.get("claim") != token:
            return False
        stored["attempts"].append(attempt)
        stored.update(status=status, claim=None)
        if next_at is not None:
            stored["next_at"] = next_at
        if delivered_at is not None:
            stored["delivered_at"] = delivered_at
        return True

    async def cancel(self, delivery_id: str, token: str) -> None:
        stored = self.records[delivery_id]
        if stored.get("claim") == token:
            stored.update(status=CANCELED, claim=None)

    async def page(self, hook_id: str, limit: int, after: Document | None) -> Page:
        mine = [d for d in self.records.values() if d["hook_id"] == hook_id]
        return Page(mine[:limit], more=len(mine) > limit)

    async def get(self, hook_id: str, delivery_id: str) -> Document | None:
        d = self.records.get(delivery_id)
        return d if d and d["hook_id"] == hook_id else None

    async def remove_of_hook(self, hook_id: str) -> int:
        gone = [k for k, d in self.records.items() if d["hook_id"] == hook_id]
        for k in gone:
            del self.records[k]
        return len(gone)


class FakeJobs:
    def __init__(self, *records: Document) -> None:
        self.records = {r["_id"]: r for r in records}

    async def get(self, owner: str, job_id: str) -> Document | None:
        job = self.records.get(job_id)
        return job if job and job["owner"] == owner else None

    async def jobs(self, job_ids: Iterable[str]) -> dict[str, Document]:
        return {i: self.records[i] for i in set(job_ids) if i in self.records}


class FakeUrls:
    def __init__(self, refusal: str | None = None) -> None:
        self.refused = refusal
        self.asked: list[str] = []

    async def refusal(self, url: str) -> str | None:
        self.asked.append(url)
        return self.refused


class FakeSender:
    """Answers with the statuses given, in order, and keeps what it was sent."""

    def __init__(self, *answers: SendResult) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        self.sent.append((url, body, headers))
        return self.answers.pop(0)


def job(job_id: str = JOB, owner: str = "alice", states: Sequence[tuple[int, str]] = ()) -> Document:
    return {
        "_id": job_id,
        "owner": owner,
        "app": "trivial",
        "state": states[-1][1] if states else "PENDING",
        "attempt": states[-1][0] if states else 0,
        "submitted_at": T0,
        "history": [{"attempt": a, "state": s, "changed_at": T0, "applied_at": T0} for a, s in states],
    }


def changed(state: JobState, *, job_id: str = JOB, owner: str = "alice", **extra: Any) -> JobStateChanged:
    return JobStateChanged(
        job_id=job_id, owner=owner, app="trivial", attempt=1, state=state, changed_at=T0, **extra
    )


async def register(
    body: Mapping[str, Any], *, jobs: FakeJobs | None = None, urls: FakeUrls | None = None, hooks: FakeHooks
) -> Document:
    return await registration.register(
        parse_hook_request(body),
        "alice",
        hooks=hooks,
        jobs=jobs or FakeJobs(job()),
        urls=urls or FakeUrls(),
        max_per_owner=2,
        now=T0,
    )


def render(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return {"job_id": record["_id"], "state": record["state"]}


async def fan_out(
    events: Sequence[JobStateChanged], hooks: FakeHooks, deliveries: FakeDeliveries, jobs: FakeJobs
) -> int:
    return await create_deliveries(
        events, hooks=hooks, deliveries=deliveries, jobs=jobs, now=T0, render=render
    )


# ------------------------------------------------------------------ registration


async def test_a_hook_is_stored_with_a_secret_shown_once() -> None:
    hooks = FakeHooks()
    record = await register({"url": "https://example.org/in", "states": ["SUCCESS"]}, hooks=hooks)
    assert hook_view(record, with_secret=True)["secret"] == record["secret"]
    assert "secret" not in hook_view(record)
    assert hooks.records[record["_id"]]["states"] == ["SUCCESS"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"url": "ftp://x/"},
        {"url": "https://x/", "states": []},
        {"url": "https://x/", "states": ["DONE"]},
        {"url": "https://x/", "states": ["SUCCESS", "SUCCESS"]},
        {"url": "https://x/", "job_id": "nope"},
        {"url": "https://x/", "colour": "red"},
    ],
)
async def test_a_body_that_does_not_fit_is_a_422_and_writes_nothing(body: Any) -> None:
    hooks = FakeHooks()
    with pytest.raises(InvalidBody):
        await register(body, hooks=hooks)
    assert hooks.records == {}


async def test_a_hook_for_another_users_job_is_a_404_and_writes_nothing() -> None:
    hooks = FakeHooks()
    with pytest.raises(ApiError) as caught:
        await register({"url": "https://x/", "job_id": JOB}, jobs=FakeJobs(job(owner="bob")), hooks=hooks)
    assert caught.value.http_status == 404
    assert hooks.records == {}


async def test_a_refused_address_is_a_422_and_the_count_is_capped() -> None:
    hooks = FakeHooks()
    with pytest.raises(InvalidBody) as refused:
        await register(
            {"url": "http://10.0.0.1/"}, urls=FakeUrls("10.0.0.1 is a private address"), hooks=hooks
        )
    assert "private" in refused.value.errors[0].message
    assert hooks.records == {}
    await register({"url": "https://a/"}, hooks=hooks)
    await register({"url": "https://b/"}, hooks=hooks)
    with pytest.raises(ApiError) as capped:
        await register({"url": "https://c/"}, hooks=hooks)
    assert capped.value.http_status == 403


async def test_another_users_hook_is_a_404_and_removing_drops_the_log() -> None:
    hooks, deliveries = FakeHooks(), FakeDeliveries()
    record = await register({"url": "https://x/"}, hooks=hooks)
    with pytest.raises(ApiError) as foreign:
        await registration.owned_hook(hooks, "bob", record["_id"])
    assert foreign.value.http_status == 404
    with pytest.raises(ApiError):
        await registration.owned_hook(hooks, "alice", "../etc")
    await fan_out([changed(JobState.QUEUED)], hooks, deliveries, FakeJobs(job(states=[(1, "QUEUED")])))
    assert len(deliveries.records) == 1
    await registration.remove(hooks, deliveries, "alice", record["_id"])
    assert hooks.records == {}
    assert deliveries.records == {}


# ------------------------------------------------------------------ fan-out


async def test_deliveries_are_made_once_per_hook_and_applied_state() -> None:
    hooks, deliveries = FakeHooks(), FakeDeliveries()
    every = await register({"url": "https://every/"}, hooks=hooks)
    finals = await register({"url": "https://finals/", "job_id": JOB, "states": ["SUCCESS"]}, hooks=hooks)
    jobs = FakeJobs(job(states=[(1, "QUEUED"), (1, "RUNNING"), (1, "SUCCESS")]), job(OTHER_JOB, "bob"))
    events = [
        changed(JobState.QUEUED),
        changed(JobState.RUNNING),
        changed(JobState.RUNNING),  # duplicate
        changed(JobState.STARTED),  # late: never applied, not in the history
        changed(JobState.FAILURE, retryable=True),  # provisional
        changed(JobState.SUCCESS),
        changed(JobState.QUEUED, job_id=OTHER_JOB, owner="bob"),  # bob has no hook
    ]
    assert await fan_out(events, hooks, deliveries, jobs) == 4
    made = sorted((d["hook_id"], d["state"]) for d in deliveries.records.values())
    assert made == sorted(
        [
            (every["_id"], "QUEUED"),
            (every["_id"], "RUNNING"),
            (every["_id"], "SUCCESS"),
            (finals["_id"], "SUCCESS"),
        ]
    )
    # The same batch again (redelivered after a crash): nothing new.
    assert await fan_out(events, hooks, deliveries, jobs) == 0
    body = json.loads(deliveries.records[delivery_id(every["_id"], JOB, 1, "SUCCESS")]["body"])
    assert body == {
        "hook_id": every["_id"],
        "event_id": f"{JOB}.1.SUCCESS",
        "job_id": JOB,
        "state": "SUCCESS",
        "attempt": 1,
        "at": "2026-11-30T12:00:00.000+00:00",
        "job": {"job_id": JOB, "state": "SUCCESS"},
    }


async def test_an_event_of_a_foreign_owner_makes_no_delivery() -> None:
    hooks, deliveries = FakeHooks(), FakeDeliveries()
    await register({"url": "https://every/"}, hooks=hooks)
    jobs = FakeJobs(job(owner="bob", states=[(1, "QUEUED")]))
    assert await fan_out([changed(JobState.QUEUED)], hooks, deliveries, jobs) == 0


# ------------------------------------------------------------------ delivery loop


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def loop(
    hooks: FakeHooks, deliveries: FakeDeliveries, sender: FakeSender, clock: Clock, attempts: int = 3
) -> DeliveryLoop:
    return DeliveryLoop(
        deliveries,
        hooks,
        sender,
        RetryPolicy(attempts, 10, 60),
        lease=timedelta(seconds=60),
        concurrency=2,
        poll_s=1,
        clock=clock,
    )


async def one_delivery() -> tuple[FakeHooks, FakeDeliveries, Document]:
    hooks, deliveries = FakeHooks(), FakeDeliveries()
    hook = await register({"url": "https://receiver/in"}, hooks=hooks)
    await fan_out([changed(JobState.QUEUED)], hooks, deliveries, FakeJobs(job(states=[(1, "QUEUED")])))
    return hooks, deliveries, hook


async def test_a_delivery_is_signed_sent_and_logged() -> None:
    hooks, deliveries, hook = await one_delivery()
    sender, clock = FakeSender(SendResult(204, None, 12)), Clock()
    assert await loop(hooks, deliveries, sender, clock).run_once() == 1
    url, body, headers = sender.sent[0]
    assert url == "https://receiver/in"
    assert headers["X-Caesar-Event-Id"] == f"{JOB}.1.QUEUED"
    assert headers["Content-Type"] == "application/json"
    assert verify(
        hook["secret"], headers["X-Caesar-Timestamp"], body, headers["X-Caesar-Signature"], now=T0.timestamp()
    )
    (stored,) = deliveries.records.values()
    view = delivery_view(stored)
    assert view["outcome"] == DELIVERED
    assert view["next_attempt_at"] is None
    assert view["attempts"] == [
        {"at": "2026-11-30T12:00:00.000+00:00", "status_code": 204, "error": None, "duration_ms": 12}
    ]
    assert await loop(hooks, deliveries, sender, clock).run_once() == 0  # nothing left


async def test_failures_are_retried_with_backoff_then_given_up() -> None:
    hooks, deliveries, _ = await one_delivery()
    sender = FakeSender(
        SendResult(500, "HTTP 500", 5), SendResult(None, "no answer", 5), SendResult(503, "x", 5)
    )
    clock = Clock()
    worker = loop(hooks, deliveries, sender, clock)
    assert await worker.run_once() == 1
    (stored,) = deliveries.records.values()
    assert stored["status"] == PENDING
    assert stored["next_at"] == T0 + timedelta(seconds=10)
    assert await worker.run_once() == 0  # not due yet
    clock.now = T0 + timedelta(seconds=10)
    assert await worker.run_once() == 1
    assert stored["next_at"] == clock.now + timedelta(seconds=20)
    clock.now += timedelta(seconds=20)
    assert await worker.run_once() == 1
    assert stored["status"] == FAILED
    assert [a["status_code"] for a in stored["attempts"]] == [500, None, 503]


async def test_a_claimed_delivery_is_not_sent_by_another_process() -> None:
    hooks, deliveries, _ = await one_delivery()
    clock = Clock()
    (seen,) = await deliveries.due(clock(), 10)
    first, second = FakeSender(SendResult(200, None, 1)), FakeSender(SendResult(200, None, 1))
    assert await loop(hooks, deliveries, first, clock).deliver(seen)
    assert not await loop(hooks, deliveries, second, clock).deliver(seen)  # read the same, claims nothing
    assert len(first.sent) == 1
    assert second.sent == []


async def test_a_delivery_whose_hook_is_gone_is_cancelled_unsent() -> None:
    hooks, deliveries, hook = await one_delivery()
    del hooks.records[hook["_id"]]
    sender = FakeSender()
    assert await loop(hooks, deliveries, sender, Clock()).run_once() == 1
    assert sender.sent == []
    assert next(iter(deliveries.records.values()))["status"] == CANCELED
