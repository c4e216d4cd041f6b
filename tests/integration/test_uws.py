"""The UWS routes on the real broker and database: drafts, PHASE=RUN, WAIT, filters, DELETE.

The api runs in process (as in ``test_api_jobs``); job states are published on the bus
the way the scheduler and runners would, and the api's projection applies them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from caesar_common.events import JobSubmitted, decode_as
from caesar_common.jobstate import JobState
from tests.integration.api_support import RunningApi, api_settings, running_api
from tests.integration.event_tap import EventTap
from tests.integration.service_support import eventually
from tests.integration.test_api_jobs import publish_state, upload

pytestmark = pytest.mark.integration

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
MAX_WAIT_S = 8.0


@pytest.fixture
async def api(tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str) -> AsyncIterator[RunningApi]:
    settings = api_settings(
        tmp_path, amqp_url, mongo_url, db_prefix, uws_max_wait_s=MAX_WAIT_S, uws_wait_poll_s=0.2
    )
    async with running_api(settings) as running:
        yield running


def path_of(location: str) -> str:
    """The path of an absolute URL the api answered with (the test client wants paths)."""
    assert location.startswith("http://"), location
    return "/" + location.split("/", 3)[3]


async def see_other(api: RunningApi, method: str, path: str, **kw: Any) -> str:
    resp = await api.client.request(method, path, allow_redirects=False, **kw)
    assert resp.status == 303, await resp.text()
    return path_of(resp.headers["Location"])


async def job_xml(api: RunningApi, path: str, **params: str) -> etree._Element:
    resp = await api.client.get(path, params=params)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/xml"
    return etree.fromstring(await resp.read())


def phase(job: etree._Element) -> str:
    return str(job.findtext(UWS + "phase"))


async def listing(api: RunningApi, *pairs: tuple[str, str]) -> list[tuple[str, str]]:
    resp = await api.client.get("/uws/aegean", params=list(pairs))
    assert resp.status == 200, await resp.text()
    root = etree.fromstring(await resp.read())
    return [(str(ref.get("id")), str(ref.findtext(UWS + "phase"))) for ref in root]


async def text(api: RunningApi, path: str) -> str:
    resp = await api.client.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def test_a_draft_runs_only_at_phase_run_and_keeps_its_url(api: RunningApi, amqp_url: str) -> None:
    file_id = await upload(api)
    async with EventTap(amqp_url, ["job.submitted"]) as tap:
        job_path = await see_other(
            api, "POST", "/uws/aegean", data={"inputfile": file_id, "SEEDTHR": "6", "runid": "uws-1"}
        )
        uws_id = job_path.rsplit("/", 1)[1]
        draft = await job_xml(api, job_path)
        assert phase(draft) == "PENDING"
        assert draft.findtext(UWS + "runId") == "uws-1"
        assert await api.jobs_docs() == []  # nothing for the scheduler to see
        assert await listing(api, ("PHASE", "PENDING")) == [(uws_id, "PENDING")]
        assert await listing(api, ("PHASE", "QUEUED")) == []
        assert await text(api, f"{job_path}/phase") == "PENDING"

        assert await see_other(api, "POST", f"{job_path}/parameters", data={"bkgbox": "80"}) == job_path
        assert await see_other(api, "POST", f"{job_path}/phase", data={"PHASE": "RUN"}) == job_path
        envelope = await tap.wait_for(lambda e: True)
    event = decode_as(envelope, JobSubmitted)
    assert event.params["seedthr"] == 6.0
    assert event.params["bkgbox"] == 80
    assert event.tag == "uws-1"
    [job] = await api.jobs_docs()
    assert job["_id"] == event.job_id
    queued = await job_xml(api, job_path)
    assert phase(queued) == "QUEUED"
    assert queued.findtext(UWS + "jobId") == uws_id
    assert await listing(api) == [(uws_id, "QUEUED")]
    assert await listing(api, ("PHASE", "PENDING")) == []
    # A second RUN submits nothing more.
    await see_other(api, "POST", f"{job_path}/phase", data={"PHASE": "RUN"})
    assert len(await api.jobs_docs()) == 1


async def test_wait_returns_when_the_phase_changes_or_at_the_server_maximum(api: RunningApi) -> None:
    file_id = await upload(api)
    job_path = await see_other(api, "POST", "/uws/aegean", data={"inputfile": file_id, "PHASE": "RUN"})
    job_id = job_path.rsplit("/", 1)[1]

    started = time.monotonic()
    # Whether the request blocks before the event lands or reads it at once, its answer
    # is EXECUTING well before the server maximum (the wait ends with the change).
    waiting = asyncio.ensure_future(job_xml(api, job_path, WAIT="-1"))
    await publish_state(api, job_id, JobState.RUNNING, pid=1, runner_id="r1")
    executing = await waiting
    assert phase(executing) == "EXECUTING"
    assert time.monotonic() - started < MAX_WAIT_S

    # Already past the phase the client names: answered at once.
    started = time.monotonic()
    assert phase(await job_xml(api, job_path, WAIT="30", PHASE="QUEUED")) == "EXECUTING"
    assert time.monotonic() - started < 2

    # Nothing changes: the server maximum ends the wait.
    started = time.monotonic()
    assert phase(await job_xml(api, job_path, WAIT="600")) == "EXECUTING"
    assert MAX_WAIT_S - 0.5 <= time.monotonic() - started < MAX_WAIT_S + 5

    await publish_state(api, job_id, JobState.SUCCESS, exit_code=0, elapsed_s=1.0)

    async def completed() -> bool:
        return await text(api, f"{job_path}/phase") == "COMPLETED"

    await eventually(completed, what="COMPLETED")
    started = time.monotonic()
    done = await job_xml(api, job_path, WAIT="30")  # a final phase never blocks
    assert time.monotonic() - started < 2
    assert done.findtext(UWS + "startTime")
    assert done.findtext(UWS + "endTime")


async def test_delete_of_a_running_job_cancels_it_then_archives_it(api: RunningApi) -> None:
    file_id = await upload(api)
    job_path = await see_other(api, "POST", "/uws/aegean", data={"inputfile": file_id, "PHASE": "RUN"})
    job_id = job_path.rsplit("/", 1)[1]
    await publish_state(api, job_id, JobState.RUNNING, pid=1, runner_id="r1")
    await eventually(lambda: _phase_is(api, job_path, "EXECUTING"), what="EXECUTING")

    deleting = asyncio.ensure_future(see_other(api, "DELETE", job_path))

    async def cancel_requested() -> bool:
        [job] = await api.jobs_docs()
        return job.get("cancel_requested_at") is not None

    await eventually(cancel_requested, what="the cancel request")
    assert not deleting.done()  # the delete waits for the job to stop
    await publish_state(api, job_id, JobState.CANCELED)
    assert await deleting == "/uws/aegean"
    [job] = await api.jobs_docs()
    assert job["deleted_at"] is not None
    assert await listing(api) == []
    assert await listing(api, ("PHASE", "ARCHIVED")) == [(job_id, "ARCHIVED")]
    assert phase(await job_xml(api, job_path)) == "ARCHIVED"


async def _phase_is(api: RunningApi, job_path: str, expected: str) -> bool:
    return await text(api, f"{job_path}/phase") == expected


async def test_filters_last_after_and_action_delete(api: RunningApi) -> None:
    file_id = await upload(api)
    paths = [await see_other(api, "POST", "/uws/aegean", data={"inputfile": file_id}) for _ in range(3)]
    ids = [p.rsplit("/", 1)[1] for p in paths]
    assert [i for i, _ in await listing(api)] == ids[::-1]
    assert [i for i, _ in await listing(api, ("LAST", "2"))] == ids[:0:-1]
    second = await job_xml(api, paths[1])
    after = str(second.findtext(UWS + "creationTime"))
    assert [i for i, _ in await listing(api, ("AFTER", after))] == [ids[2]]
    await see_other(api, "POST", f"{paths[0]}/phase", data={"PHASE": "ABORT"})
    assert await listing(api, ("PHASE", "ABORTED")) == [(ids[0], "ABORTED")]
    assert await see_other(api, "POST", paths[2], data={"ACTION": "DELETE"}) == "/uws/aegean"
    assert [i for i, _ in await listing(api)] == [ids[1], ids[0]]
    resp = await api.client.get(paths[2])
    assert resp.status == 404


async def test_errors_are_plain_text_with_the_right_status(api: RunningApi) -> None:
    file_id = await upload(api)
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("GET", "/uws/nosuchapp", {}, 404, "no such app"),
        ("GET", "/uws/aegean", {"params": {"LAST": "0"}}, 400, "LAST"),
        ("GET", "/uws/aegean", {"params": {"PHASE": "RUNNING"}}, 400, "EXECUTING"),
        ("POST", "/uws/aegean", {"data": {"SEEDTHR": "5"}}, 400, "inputfile"),
        ("POST", "/uws/aegean", {"data": {"inputfile": file_id, "seedthr": "-3"}}, 403, "seedthr"),
        ("POST", "/uws/aegean", {"data": {"inputfile": "f" * 32, "PHASE": "RUN"}}, 403, "not found"),
        ("GET", "/uws/aegean/00000000-0000-4000-8000-000000000000", {}, 404, "No job"),
        ("GET", "/uws/aegean/../../etc", {}, 404, ""),
    ]
    for method, path, kw, status, needle in cases:
        resp = await api.client.request(method, path, allow_redirects=False, **kw)
        body = await resp.text()
        assert resp.status == status, (path, kw, body)
        if needle:
            assert resp.content_type == "text/plain", (path, body)
            assert needle in body, (path, body)
    assert await api.jobs_docs() == []
    job_path = await see_other(api, "POST", "/uws/aegean", data={"inputfile": file_id})
    for name, value in (("executionduration", "x"), ("destruction", "tomorrow")):
        resp = await api.client.post(f"{job_path}/{name}", data={name.upper(): value}, allow_redirects=False)
        assert resp.status == 400, await resp.text()
    assert (
        await see_other(api, "POST", f"{job_path}/executionduration", data={"EXECUTIONDURATION": "10"})
        == job_path
    )
    assert await text(api, f"{job_path}/executionduration") == "3600"
    assert (
        await see_other(api, "POST", f"{job_path}/destruction", data={"DESTRUCTION": "2030-01-01T00:00:00Z"})
        == job_path
    )
    assert await text(api, f"{job_path}/destruction") == ""
    assert await text(api, f"{job_path}/quote") == ""
    assert await text(api, f"{job_path}/owner") == "anonymous"
    resp = await api.client.get(f"{job_path}/error")
    assert resp.status == 404
