"""Webhooks on the real broker and database, delivered to a local receiver over HTTP.

The api allows private addresses here (``CAESAR_WEBHOOKS_ALLOW_PRIVATE``, the receiver is
on loopback) and retries fast; the receiver answers 500 to the first POST of each event
and checks every signature with the hook's secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from caesar_api.push.domain.signing import verify
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobState
from caesar_common.outbox import envelope_for
from tests.integration.api_support import V1, RunningApi, api_settings, radio_fits, running_api
from tests.integration.service_support import eventually

pytestmark = pytest.mark.integration

V2 = "/api/v2"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Receiver:
    """Records every POST; the first of each (hook, event) gets a 500. Checks each signature
    with the secret of the hook the body names."""

    secrets: dict[str, str] = field(default_factory=dict)
    posts: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        hook_id = json.loads(body)["hook_id"]
        key = (hook_id, request.headers.get("X-Caesar-Event-Id", ""))
        status = 500 if all(p["key"] != key for p in self.posts) else 200
        self.posts.append(
            {
                "key": key,
                "status": status,
                "signed": verify(
                    self.secrets.get(hook_id, ""),
                    request.headers.get("X-Caesar-Timestamp", ""),
                    body,
                    request.headers.get("X-Caesar-Signature", ""),
                    now=time.time(),
                ),
                "content_type": request.headers.get("Content-Type"),
            }
        )
        return web.Response(status=status)

    def delivered(self) -> list[tuple[str, str]]:
        return sorted(p["key"] for p in self.posts if p["status"] == 200)


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


async def new_job(api: RunningApi) -> str:
    data = aiohttp.FormData()
    data.add_field("file", radio_fits(32), filename="map.fits")
    resp = await api.client.post(f"{V1}/upload", data=data)
    file_id = (await resp.json())["uuid"]
    resp = await api.client.post(
        f"{V1}/job", json={"app": "aegean", "job_inputs": {}, "data_inputs": file_id}
    )
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["job_id"])


async def publish(api: RunningApi, job_id: str, state: JobState, **kw: Any) -> None:
    event = JobStateChanged(
        job_id=job_id, owner="anonymous", app="aegean", attempt=1, state=state, changed_at=T0, **kw
    )
    await api.runtime.bus.publish(envelope_for(event, "runner"))


async def test_states_are_delivered_signed_retried_and_never_twice(
    tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    settings = api_settings(
        tmp_path,
        amqp_url,
        mongo_url,
        db_prefix,
        webhooks_allow_private=True,
        webhook_retry_base_s=0.2,
        webhook_poll_s=0.2,
    )
    async with running_api(settings) as api:
        job_id = await new_job(api)
        resp = await api.client.post(f"{V2}/webhooks", json={"url": url, "job_id": job_id})
        assert resp.status == 201, await resp.text()
        hook = await resp.json()
        state.secrets[hook["hook_id"]] = hook["secret"]
        assert resp.headers["Location"] == f"{V2}/webhooks/{hook['hook_id']}"
        finals_resp = await api.client.post(f"{V2}/webhooks", json={"url": url, "states": ["SUCCESS"]})
        assert finals_resp.status == 201
        finals = await finals_resp.json()
        state.secrets[finals["hook_id"]] = finals["secret"]

        await publish(api, job_id, JobState.QUEUED)
        await publish(api, job_id, JobState.QUEUED)  # duplicate
        await publish(api, job_id, JobState.RUNNING)
        await publish(api, job_id, JobState.FAILURE, retryable=True)  # provisional: never delivered
        await publish(api, job_id, JobState.SUCCESS)
        await publish(api, job_id, JobState.SUCCESS)  # duplicate

        expected = sorted(
            [(hook["hook_id"], f"{job_id}.1.{s}") for s in ("QUEUED", "RUNNING", "SUCCESS")]
            + [(finals["hook_id"], f"{job_id}.1.SUCCESS")]
        )

        def all_delivered() -> bool:
            return state.delivered() == expected

        await eventually(all_delivered, timeout_s=30, what="every state delivered after one 500 each")
        assert len(state.posts) == 2 * len(expected)  # one 500 and one 200 each, nothing twice
        assert all(p["signed"] for p in state.posts)
        assert all(p["content_type"] == "application/json" for p in state.posts)

        log = await (await api.client.get(f"{V2}/webhooks/{hook['hook_id']}/deliveries")).json()
        assert sorted(d["state"] for d in log["items"]) == ["QUEUED", "RUNNING", "SUCCESS"]
        for delivery in log["items"]:
            assert delivery["outcome"] == "delivered"
            assert delivery["attempts"][-1]["status_code"] == 200
            assert all(a["status_code"] in (500, 200) for a in delivery["attempts"])
        assert {d["event_id"] for d in log["items"]} == {
            f"{job_id}.1.{s}" for s in ("QUEUED", "RUNNING", "SUCCESS")
        }

        listed = await (await api.client.get(f"{V2}/webhooks")).json()
        assert {h["hook_id"] for h in listed["items"]} == {hook["hook_id"], finals["hook_id"]}
        assert all("secret" not in h for h in listed["items"])
        assert (await api.client.delete(f"{V2}/webhooks/{hook['hook_id']}")).status == 204
        assert (await api.client.get(f"{V2}/webhooks/{hook['hook_id']}")).status == 404
        assert (await api.client.get(f"{V2}/webhooks/{hook['hook_id']}/deliveries")).status == 404
        remaining = await api.runtime.collection("webhook_deliveries").count_documents(
            {"hook_id": hook["hook_id"]}
        )
        assert remaining == 0


async def test_private_targets_are_refused_unless_allowed(
    tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str
) -> None:
    async with running_api(api_settings(tmp_path, amqp_url, mongo_url, db_prefix)) as api:
        for url in (
            "http://127.0.0.1:9/hook",
            "http://localhost/hook",
            "http://[::1]/",
            "http://169.254.169.254/",
        ):
            resp = await api.client.post(f"{V2}/webhooks", json={"url": url})
            assert resp.status == 422, url
            problem = await resp.json()
            assert problem["errors"][0]["path"] == "/url"
        unknown_job = await api.client.post(
            f"{V2}/webhooks",
            json={"url": "https://example.org/", "job_id": "0f0e0d0c-0b0a-4000-8000-00000000dead"},
        )
        assert unknown_job.status == 404
        not_json = await api.client.post(
            f"{V2}/webhooks", data=b"{", headers={"Content-Type": "application/json"}
        )
        assert not_json.status == 400
        assert (await (await api.client.get(f"{V2}/webhooks")).json())["items"] == []
        assert await api.runtime.collection("webhooks").count_documents({}) == 0
