"""The in-process hub, the streams built on it and the feed into it, with fakes and no broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from caesar_api.push.adapters.feed import PushFeed, push_queue_arguments, push_queue_name
from caesar_api.push.domain.resume import StateEvent
from caesar_api.push.domain.sse import KEEP_ALIVE
from caesar_api.push.metrics import SSE_EVICTED
from caesar_api.push.service.hub import SERVER_STOPPING, SLOW_CLIENT, HubClosed, PushHub, TooManyStreams
from caesar_api.push.service.streams import StreamLimits, job_frames, user_frames
from caesar_common.bus import Bus
from caesar_common.events import Envelope, JobStateChanged
from caesar_common.jobstate import JobPosition, JobState

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
JOB = "0f0e0d0c-0b0a-4000-8000-000000000001"
OTHER = "0f0e0d0c-0b0a-4000-8000-000000000002"
QUIET = StreamLimits(heartbeat_s=60, duration_s=60)


def event(state: JobState, *, job_id: str = JOB, owner: str = "alice", attempt: int = 1) -> StateEvent:
    return StateEvent(job_id, owner, attempt, state, T0, T0)


def hub(**overrides: int) -> PushHub:
    return PushHub(**{"max_streams_per_owner": 4, "queue_size": 8, **overrides})


async def test_events_reach_their_owners_streams_and_a_job_stream_only_its_job() -> None:
    h = hub()
    all_alice = h.subscribe("alice")
    job_alice = h.subscribe("alice", OTHER)
    bob = h.subscribe("bob")
    assert h.publish(event(JobState.RUNNING)) == 1
    assert h.publish(event(JobState.RUNNING, job_id=OTHER)) == 2
    assert [e.job_id for e in [await all_alice.next(0), await all_alice.next(0)] if e] == [JOB, OTHER]
    assert (await job_alice.next(0)) == event(JobState.RUNNING, job_id=OTHER)
    assert await bob.next(0) is None


async def test_a_slow_subscriber_is_evicted_counted_and_its_connection_aborted() -> None:
    h = hub(queue_size=2)
    slow, fast = h.subscribe("alice"), h.subscribe("alice")
    aborted: list[str] = []
    slow.on_close = aborted.append
    before = SSE_EVICTED._value.get()
    for state in (JobState.QUEUED, JobState.STARTED):
        h.publish(event(state))
        assert await fast.next(0) is not None  # the fast one keeps up
    h.publish(event(JobState.RUNNING))  # the slow one's queue is full
    assert slow.closed_reason == SLOW_CLIENT
    assert aborted == [SLOW_CLIENT]
    assert SSE_EVICTED._value.get() == before + 1
    assert h.streams_of("alice") == 1  # unsubscribed, so it holds nothing
    assert await slow.next(0) is None
    assert (await fast.next(0)) == event(JobState.RUNNING)


async def test_streams_per_caller_are_capped_and_released() -> None:
    h = hub(max_streams_per_owner=2)
    first = h.subscribe("alice")
    h.subscribe("alice", JOB)
    with pytest.raises(TooManyStreams):
        h.subscribe("alice")
    # An admin following alice's job counts against the admin, not alice.
    h.subscribe("alice", JOB, caller="admin")
    h.unsubscribe(first)
    h.unsubscribe(first)  # twice is harmless
    assert h.streams_of("alice") == 1
    h.subscribe("alice")


async def test_close_all_wakes_every_stream_and_refuses_new_ones_at_shutdown() -> None:
    h = hub()
    subscriber = h.subscribe("alice")
    waiting = asyncio.ensure_future(subscriber.next(60))
    await asyncio.sleep(0)  # let it wait
    h.close_all()
    assert await asyncio.wait_for(waiting, 1) is None
    assert subscriber.closed_reason == SERVER_STOPPING
    with pytest.raises(HubClosed):
        h.subscribe("alice")


async def collect(frames: AsyncIterator[bytes], count: int) -> list[bytes]:
    got = []
    async for frame in frames:
        got.append(frame)
        if len(got) == count:
            break
    return got


def job_record(state: str, attempt: int = 1, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "_id": JOB,
        "owner": "alice",
        "state": state,
        "attempt": attempt,
        "submitted_at": T0,
        "updated_at": T0,
        "history": history or [],
    }


def ids(frames: list[bytes]) -> list[str]:
    return [f.decode().split("\n")[0].removeprefix("id: ") for f in frames if f != KEEP_ALIVE]


async def test_the_job_stream_drops_live_events_the_replay_covered_and_ends_after_a_final_state() -> None:
    h = hub()
    subscriber = h.subscribe("alice", JOB)
    # Live events that arrived while the record was read: RUNNING is already in it.
    for state in (JobState.STARTED, JobState.RUNNING, JobState.SUCCESS, JobState.SUCCESS):
        h.publish(event(state))
    frames = [f async for f in job_frames(subscriber, job_record("RUNNING"), None, QUIET)]
    assert ids(frames) == ["1.RUNNING", "1.SUCCESS"]
    assert frames[0].endswith(b"data: RUNNING\n\n")


async def test_a_resumed_job_stream_replays_the_gap_then_follows_live() -> None:
    history = [
        {"state": s, "attempt": 1, "changed_at": T0, "applied_at": T0}
        for s in ("QUEUED", "STARTED", "RUNNING")
    ]
    h = hub()
    subscriber = h.subscribe("alice", JOB)
    h.publish(event(JobState.RUNNING))  # covered by the replay
    h.publish(event(JobState.FAILURE))
    record = job_record("RUNNING", history=history)
    frames = [f async for f in job_frames(subscriber, record, JobPosition(1, JobState.QUEUED), QUIET)]
    assert ids(frames) == ["1.STARTED", "1.RUNNING", "1.FAILURE"]


async def test_a_quiet_stream_sends_keep_alives_and_ends_when_its_time_is_up() -> None:
    h = hub()
    subscriber = h.subscribe("alice", JOB)
    frames = [
        f
        async for f in job_frames(
            subscriber, job_record("QUEUED"), None, StreamLimits(heartbeat_s=0.02, duration_s=0.1)
        )
    ]
    assert ids(frames) == ["1.QUEUED"]
    assert frames.count(KEEP_ALIVE) >= 2


async def test_a_stream_ends_when_its_subscriber_is_closed() -> None:
    h = hub()
    subscriber = h.subscribe("alice")
    stream = user_frames(subscriber, None, None, QUIET)
    first = asyncio.ensure_future(collect(stream, 1))
    h.publish(event(JobState.QUEUED))
    assert len(await asyncio.wait_for(first, 1)) == 1
    h.close_all()
    assert [f async for f in stream] == []


async def test_the_user_stream_replays_then_follows_without_repeating() -> None:
    h = hub()
    subscriber = h.subscribe("alice")
    h.publish(event(JobState.RUNNING))  # arrived during the replay, which has it
    h.publish(event(JobState.QUEUED, job_id=OTHER))

    async def replay() -> AsyncIterator[dict[str, Any]]:
        history = [{"state": "RUNNING", "attempt": 1, "changed_at": T0, "applied_at": T0}]
        yield {**job_record("RUNNING", history=history), "applied_at": T0}

    frames = await collect(user_frames(subscriber, replay(), T0, QUIET), 2)
    assert f'"job_id":"{JOB}","state":"RUNNING"'.encode() in frames[0]  # replayed, not sent again
    assert f'"job_id":"{OTHER}","state":"QUEUED"'.encode() in frames[1]  # then live


def test_the_feed_hands_shown_job_states_to_the_hub_and_ignores_the_rest() -> None:
    h = hub()
    subscriber = h.subscribe("alice")
    feed = PushFeed(Bus("amqp://unused/", "api"), h, max_length=10, instance="test", clock=lambda: T0)
    assert feed.queue_name == push_queue_name("test") == "api.push.test"
    assert push_queue_arguments(10) == {"x-max-length": 10, "x-overflow": "drop-head"}
    base: dict[str, Any] = {"job_id": JOB, "owner": "alice", "app": "trivial", "attempt": 1, "changed_at": T0}
    feed.handle(
        Envelope.wrap(JobStateChanged(**base, state=JobState.FAILURE, retryable=True), "runner").to_bytes()
    )
    feed.handle(b"not json")
    feed.handle(Envelope.wrap(JobStateChanged(**base, state=JobState.RUNNING), "runner").to_bytes())
    assert subscriber._queue
    assert len(subscriber._queue) == 1
    assert subscriber._queue[0].state is JobState.RUNNING
