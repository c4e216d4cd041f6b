"""SSE on the real broker and database: the hub fed by real events, resumes from the history.

The api runs in-process as ``python -m caesar_api`` wires it; the test publishes job
states on the bus as the scheduler and runners would, and reads the streams over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from caesar_api.push.adapters.feed import PushFeed
from caesar_api.push.service.hub import PushHub
from caesar_api.push.wiring import push_of
from caesar_common.bus import Bus
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobState
from caesar_common.outbox import envelope_for
from tests.conftest import Vhost
from tests.integration.api_support import V1, RunningApi, api_settings, radio_fits, running_api
from tests.integration.service_support import eventually

pytestmark = pytest.mark.integration

V2 = "/api/v2"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
READ_TIMEOUT_S = 15.0


@dataclass
class Event:
    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)


async def next_event(resp: aiohttp.ClientResponse) -> Event | None:
    """The next event of a stream (comments skipped), ``None`` at its end."""
    current = Event()
    while True:
        raw = await asyncio.wait_for(resp.content.readline(), READ_TIMEOUT_S)
        if not raw:
            return None
        line = raw.decode().rstrip("\n")
        if line == "":
            if current.id is not None or current.data:
                return current
            current = Event()
        elif line.startswith(":") or line.startswith("retry:"):
            continue
        else:
            name, _, value = line.partition(": ")
            if name == "id":
                current.id = value
            elif name == "event":
                current.event = value
            elif name == "data":
                current.data.append(value)


async def events_until_end(resp: aiohttp.ClientResponse) -> list[Event]:
    events = []
    while (event := await next_event(resp)) is not None:
        events.append(event)
    return events


@pytest.fixture
async def api(tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str) -> AsyncIterator[RunningApi]:
    settings = api_settings(tmp_path, amqp_url, mongo_url, db_prefix, sse_max_streams_per_user=3)
    async with running_api(settings) as running:
        yield running


async def new_job(api: RunningApi) -> str:
    data = aiohttp.FormData()
    data.add_field("file", radio_fits(32), filename="map.fits")
    resp = await api.client.post(f"{V1}/upload", data=data)
    assert resp.status == 200
    file_id = (await resp.json())["uuid"]
    resp = await api.client.post(
        f"{V1}/job", json={"app": "aegean", "job_inputs": {}, "data_inputs": file_id}
    )
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["job_id"])


async def publish(api: RunningApi, job_id: str, state: JobState, attempt: int = 1, **kw: Any) -> None:
    event = JobStateChanged(
        job_id=job_id, owner="anonymous", app="aegean", attempt=attempt, state=state, changed_at=T0, **kw
    )
    await api.runtime.bus.publish(envelope_for(event, "runner"))


async def history(api: RunningApi, job_id: str) -> list[str]:
    record = await api.runtime.collection("jobs").find_one({"_id": job_id})
    assert record is not None
    return [f"{e['attempt']}.{e['state']}" for e in record.get("history") or ()]


async def applied(api: RunningApi, job_id: str, *positions: str) -> None:
    async def done() -> bool:
        return (await history(api, job_id))[-len(positions) :] == list(positions)

    await eventually(done, what=f"the projection to apply {positions}")


async def test_the_api_user_declares_its_push_queue_and_a_dead_process_leaves_nothing(vhost: Vhost) -> None:
    """With the api's own least-privilege broker user, as deployed."""
    hub = PushHub(max_streams_per_owner=1, queue_size=4)
    subscriber = hub.subscribe("anonymous")
    api_bus, admin = Bus(vhost.url_for("api"), "api"), Bus(vhost.url, "test")
    await api_bus.connect(wait_s=10)
    await admin.connect(wait_s=10)
    try:
        feed = PushFeed(api_bus, hub, max_length=10)
        await feed.start()
        job_id = "0f0e0d0c-0b0a-4000-8000-000000000001"
        event = JobStateChanged(
            job_id=job_id, owner="anonymous", app="aegean", attempt=1, state=JobState.RUNNING, changed_at=T0
        )
        await admin.publish(envelope_for(event, "runner"))
        got = await subscriber.next(READ_TIMEOUT_S)
        assert got is not None
        assert (got.job_id, got.state) == (job_id, JobState.RUNNING)
    finally:
        await api_bus.close()
    # The process's connection is gone, and its queue with it.
    connection = await aio_pika.connect_robust(vhost.url)
    try:
        channel = await connection.channel()
        with pytest.raises(ChannelNotFoundEntity):
            await channel.declare_queue(feed.queue_name, passive=True)
    finally:
        await connection.close()
        await admin.close()


async def test_the_job_stream_follows_real_events_and_resumes_from_the_history(api: RunningApi) -> None:
    job_id = await new_job(api)
    resp = await api.client.get(f"{V2}/jobs/{job_id}/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    first = await next_event(resp)
    assert first is not None
    assert (first.id, first.event, first.data) == ("0.PENDING", "state", ["PENDING"])
    await publish(api, job_id, JobState.QUEUED)
    await publish(api, job_id, JobState.QUEUED)  # duplicate
    await publish(api, job_id, JobState.RUNNING)
    await publish(api, job_id, JobState.FAILURE, retryable=True)  # provisional: never shown
    await publish(api, job_id, JobState.STARTED)  # late
    await publish(api, job_id, JobState.SUCCESS)
    rest = await events_until_end(resp)  # the stream ends after the final state
    assert [e.id for e in rest] == ["1.QUEUED", "1.RUNNING", "1.SUCCESS"]
    assert [e.data for e in rest] == [["QUEUED"], ["RUNNING"], ["SUCCESS"]]

    await applied(api, job_id, "1.QUEUED", "1.RUNNING", "1.SUCCESS")
    record = await api.runtime.collection("jobs").find_one({"_id": job_id})
    assert record is not None
    assert all(e["applied_at"] is not None for e in record["history"])
    assert record["applied_at"] == record["history"][-1]["applied_at"]

    resumed = await api.client.get(f"{V2}/jobs/{job_id}/events", headers={"Last-Event-ID": "1.QUEUED"})
    assert [e.id for e in await events_until_end(resumed)] == ["1.RUNNING", "1.SUCCESS"]
    done = await api.client.get(f"{V2}/jobs/{job_id}/events?last_event_id=1.SUCCESS")
    assert done.status == 204  # EventSource stops reconnecting


async def test_the_user_stream_replays_what_a_client_missed(api: RunningApi) -> None:
    job_id = await new_job(api)
    resp = await api.client.get(f"{V2}/events")
    assert resp.status == 200
    await publish(api, job_id, JobState.QUEUED)
    seen = await next_event(resp)
    assert seen is not None
    assert seen.id is not None
    assert f'"job_id":"{job_id}","state":"QUEUED"' in seen.data[0]
    resp.close()  # the connection drops

    await publish(api, job_id, JobState.RUNNING)
    await publish(api, job_id, JobState.SUCCESS)
    await applied(api, job_id, "1.QUEUED", "1.RUNNING", "1.SUCCESS")
    resumed = await api.client.get(f"{V2}/events?timeout_s=2", headers={"Last-Event-ID": seen.id})
    states = [e.data[0] for e in await events_until_end(resumed)]
    missed = [s for s in states if '"state":"QUEUED"' not in s]  # QUEUED may come twice: allowed
    assert [('"state":"RUNNING"' in s, '"state":"SUCCESS"' in s) for s in missed] == [
        (True, False),
        (False, True),
    ]


async def test_refusals_are_problems_before_any_stream(api: RunningApi) -> None:
    unknown = await api.client.get(f"{V2}/jobs/0f0e0d0c-0b0a-4000-8000-00000000dead/events")
    assert unknown.status == 404
    assert unknown.content_type == "application/problem+json"
    job_id = await new_job(api)
    for query, headers in [
        ("?timeout_s=0", {}),
        ("?timeout_s=abc", {}),
        ("", {"Last-Event-ID": "nonsense"}),
        ("?last_event_id=1.BOGUS", {}),
        ("", {"Last-Event-ID": ""}),
        ("?timeout=5", {}),  # a typo must not leave the client waiting an hour
    ]:
        resp = await api.client.get(f"{V2}/jobs/{job_id}/events{query}", headers=headers)
        assert resp.status == 400, (query, headers)
    bad_user_id = await api.client.get(f"{V2}/events", headers={"Last-Event-ID": "1.QUEUED"})
    assert bad_user_id.status == 400

    streams = [await api.client.get(f"{V2}/events") for _ in range(3)]
    assert all(s.status == 200 for s in streams)
    over = await api.client.get(f"{V2}/jobs/{job_id}/events")
    assert over.status == 429
    assert over.headers["Retry-After"]
    streams[0].close()
    await eventually(lambda: _streams(api) < 3, what="a stream to be released")
    again = await api.client.get(f"{V2}/jobs/{job_id}/events?timeout_s=1")
    assert again.status == 200
    for s in streams[1:]:
        s.close()


def _streams(api: RunningApi) -> int:
    return push_of(api.runtime).hub.streams_of("anonymous")


async def test_shutdown_ends_open_streams_at_once(api: RunningApi) -> None:
    job_id = await new_job(api)
    job_stream = await api.client.get(f"{V2}/jobs/{job_id}/events")
    user_stream = await api.client.get(f"{V2}/events")
    assert await next_event(job_stream) is not None
    await api.client.app.shutdown()  # what a graceful stop runs before waiting for requests
    assert await events_until_end(user_stream) == []
    assert await events_until_end(job_stream) == []
