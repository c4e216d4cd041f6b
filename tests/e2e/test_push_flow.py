"""A real job followed over SSE (dropped mid-way and resumed) and over a webhook.

The whole stack runs as processes, each with its own least-privilege users. The test app
``trivial`` sleeps a couple of seconds and a real Aegean job takes a few, so the job is
still running when the stream is dropped; the client reconnects with Last-Event-ID only
once the job has ended, so the rest can only come from the job's stored history, and
must come without a gap.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from caesar_api.push.domain.signing import verify
from caesar_api.push.domain.sse import parse_job_event_id
from caesar_common.jobstate import JobState, supersedes
from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.e2e.conftest import make_stack, submit, upload, wait_state

pytestmark = pytest.mark.e2e

READ_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(
        tmp_path_factory.mktemp("push"),
        CAESAR_SLOTS="2",
        CAESAR_OUTBOX_SWEEP_INTERVAL_S="1",
        CAESAR_ENABLE_TEST_APPS="true",
        # The receiver below listens on loopback.
        CAESAR_WEBHOOKS_ALLOW_PRIVATE="true",
        CAESAR_WEBHOOK_RETRY_BASE_S="0.5",
        CAESAR_WEBHOOK_POLL_S="0.5",
    )


@dataclass
class Receiver:
    secret: str = ""
    states: list[str] = field(default_factory=list)
    all_signed: bool = True

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = request.headers
        self.all_signed &= verify(
            self.secret, headers["X-Caesar-Timestamp"], body, headers["X-Caesar-Signature"], now=time.time()
        )
        self.states.append(json.loads(body)["state"])
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("/hook"))
    finally:
        await server.close()


async def read_ids(resp: aiohttp.ClientResponse, *, stop_after: int | None = None) -> list[str]:
    """The event ids of a stream, until it ends (or after ``stop_after`` events).

    Each event's ``data:`` line must be the state its id names: what a client that
    reads only the data (``curl -N``) sees.
    """
    ids: list[str] = []
    event_id = ""
    while stop_after is None or len(ids) < stop_after:
        raw = await asyncio.wait_for(resp.content.readline(), READ_TIMEOUT_S)
        if not raw:
            break
        line = raw.decode().rstrip("\n")
        if line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("data: "):
            assert line.removeprefix("data: ") == parse_job_event_id(event_id).state.value, (event_id, line)
            ids.append(event_id)
    return ids


@pytest.mark.parametrize(
    ("app", "options"),
    [("trivial", {"seconds": 3}), ("aegean", {})],
    ids=["trivial", "aegean"],
)
async def test_a_job_followed_over_sse_with_a_resume_and_over_a_webhook(
    stack: Stack, receiver: tuple[Receiver, str], tmp_path: Path, app: str, options: dict[str, Any]
) -> None:
    hooks_state, hook_url = receiver
    image = tmp_path / "sky.fits"
    write_simulation(SimulationSpec(size=128, seed=4), image)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        # A hook for all of the caller's jobs, before the job exists: it hears every state.
        async with http.post(f"{stack.api}/api/v2/webhooks", json={"url": hook_url}) as resp:
            assert resp.status == 201, await resp.text()
            hook = await resp.json()
        hooks_state.secret = hook["secret"]

        file_id = await upload(http, stack, image)
        job_id = await submit(http, stack, {"app": app, "job_inputs": options, "data_inputs": file_id})
        events_url = f"{stack.api}/api/v2/jobs/{job_id}/events"
        async with http.get(events_url) as stream:
            assert stream.status == 200
            before = await read_ids(stream, stop_after=1)  # the current state, then drop
        assert not parse_job_event_id(before[0]).is_final

        assert (await wait_state(http, stack, job_id))["state"] == "SUCCESS"
        async with http.get(events_url, headers={"Last-Event-ID": before[-1]}) as resumed:
            assert resumed.status == 200
            after = await read_ids(resumed)  # ends by itself after SUCCESS

        positions = [parse_job_event_id(i) for i in before + after]
        assert positions[-1].state is JobState.SUCCESS
        assert all(supersedes(b, a) for a, b in itertools.pairwise(positions))
        # No gap: every state the job went through after the drop was replayed.
        assert {JobState.RUNNING, JobState.SUCCESS} <= {p.state for p in positions}

        async def delivered() -> bool:
            return "SUCCESS" in hooks_state.states

        deadline = time.monotonic() + 60
        while not await delivered():
            assert time.monotonic() < deadline, f"webhook got only {hooks_state.states}"
            await asyncio.sleep(0.2)
        assert hooks_state.all_signed
        shown = [p.state.value for p in positions if p.state is not JobState.PENDING]
        assert hooks_state.states == shown  # the same states, each once, in order

        async with http.get(f"{stack.api}/api/v2/webhooks/{hook['hook_id']}/deliveries") as resp:
            log: dict[str, Any] = await resp.json()
        assert sorted(d["state"] for d in log["items"]) == sorted(shown)
        assert all(d["outcome"] == "delivered" for d in log["items"])
