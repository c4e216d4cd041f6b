"""The v2 job routes, and v1 ``/jobs`` without ``limit``, on the real broker and database."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from caesar_api.domain.responses import job_summary
from caesar_common.events import JobStateChanged
from caesar_common.ids import new_job_id
from caesar_common.jobstate import JobState
from caesar_common.outbox import envelope_for
from tests.conftest import Vhost
from tests.integration.api_support import V1, RunningApi, api_settings, radio_fits, running_api
from tests.integration.service_support import eventually

pytestmark = pytest.mark.integration

V2 = "/api/v2"
PROBLEM = "application/problem+json"
PAGE = 3
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def api(tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str) -> AsyncIterator[RunningApi]:
    async with running_api(
        api_settings(tmp_path, amqp_url, mongo_url, db_prefix, default_page_size=PAGE)
    ) as running:
        yield running


async def upload(api: RunningApi) -> str:
    data = aiohttp.FormData()
    data.add_field("file", radio_fits(32), filename="map.fits")
    resp = await api.client.post(f"{V2}/files", data=data)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["file_id"])


async def submit(api: RunningApi, file_id: str, **body: Any) -> dict[str, Any]:
    resp = await api.client.post(f"{V2}/jobs", json={"app": "aegean", "file_id": file_id, **body})
    assert resp.status == 201, await resp.text()
    job: dict[str, Any] = await resp.json()
    assert resp.headers["Location"] == f"{V2}/jobs/{job['job_id']}"
    return job


async def get_job(api: RunningApi, job_id: str) -> dict[str, Any]:
    resp = await api.client.get(f"{V2}/jobs/{job_id}")
    assert resp.status == 200, await resp.text()
    job: dict[str, Any] = await resp.json()
    return job


async def problem_of(resp: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    body: dict[str, Any] = await resp.json()
    assert body["status"] == status
    return body


async def publish(api: RunningApi, job_id: str, state: JobState, seconds: int = 0, **kw: Any) -> None:
    event = JobStateChanged(
        job_id=job_id,
        owner="anonymous",
        app="aegean",
        attempt=kw.pop("attempt", 1),
        state=state,
        changed_at=T0 + timedelta(seconds=seconds),
        **kw,
    )
    await api.runtime.bus.publish(envelope_for(event, "runner"))


async def reaches(api: RunningApi, job_id: str, state: str) -> dict[str, Any]:
    async def there() -> bool:
        return bool((await get_job(api, job_id))["state"] == state)

    await eventually(there, what=state)
    return await get_job(api, job_id)


async def projection_idle(vhost: Vhost) -> None:
    async def idle() -> bool:
        return vhost.queue_depths().get("api.job-states", 0) == 0

    await eventually(idle, what="projection queue to drain")


# -- submit ---------------------------------------------------------------------------


async def test_submit_answers_the_job_with_its_place_in_the_queue(api: RunningApi) -> None:
    file_id = await upload(api)
    job = await submit(api, file_id, options={"seedthr": 6}, tag="run1")
    job_id = job["job_id"]
    assert job["state"] == "PENDING"
    assert job["file_id"] == file_id
    assert job["options"] == {"seedthr": 6}
    assert job["tag"] == "run1"
    assert job["queue_position"] == 1
    assert job["submitted_at"].endswith("+00:00")
    assert job["links"]["archive"] == f"{V2}/jobs/{job_id}/archive"
    assert await get_job(api, job_id) == job
    second = await submit(api, file_id)
    assert second["queue_position"] == 2


async def test_submit_refusals(api: RunningApi) -> None:
    file_id = await upload(api)
    invalid = await problem_of(
        await api.client.post(
            f"{V2}/jobs", json={"app": "aegean", "file_id": file_id, "options": {"seedthr": -1, "nope": 1}}
        ),
        422,
    )
    assert {e["path"] for e in invalid["errors"]} == {"/options", "/options/seedthr"}
    unknown_app = await problem_of(
        await api.client.post(f"{V2}/jobs", json={"app": "x", "file_id": file_id}), 422
    )
    assert unknown_app["errors"][0]["path"] == "/app"
    shape = await problem_of(await api.client.post(f"{V2}/jobs", json=["aegean"]), 422)
    assert shape["errors"] == [{"path": "", "message": "the body must be a JSON object"}]
    malformed = await api.client.post(
        f"{V2}/jobs", data=b'{"app": ', headers={"Content-Type": "application/json"}
    )
    await problem_of(malformed, 400)
    missing = await problem_of(
        await api.client.post(f"{V2}/jobs", json={"app": "aegean", "file_id": "f" * 32}), 404
    )
    assert "not found" in missing["detail"]
    assert await api.jobs_docs() == []


# -- list -----------------------------------------------------------------------------


async def test_list_filters_and_pages(api: RunningApi, vhost: Vhost) -> None:
    file_id = await upload(api)
    ids = [(await submit(api, file_id))["job_id"] for _ in range(4)]
    await publish(api, ids[0], JobState.SUCCESS, exit_code=0)
    await publish(api, ids[1], JobState.RUNNING)
    await reaches(api, ids[0], "SUCCESS")
    await reaches(api, ids[1], "RUNNING")

    async def listed(**params: str) -> tuple[list[str], str | None]:
        resp = await api.client.get(f"{V2}/jobs", params=params)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        return [j["job_id"] for j in body["items"]], body["next"]

    every, following = await listed()
    assert every == ids[::-1][:PAGE]
    assert following is not None
    rest = await (await api.client.get(following)).json()
    assert [j["job_id"] for j in rest["items"]] == [ids[0]]
    assert (await listed(state="SUCCESS"))[0] == [ids[0]]
    assert (await listed(state="success,running"))[0] == [ids[1], ids[0]]
    pending = await api.client.get(f"{V2}/jobs?state=PENDING&state=QUEUED&limit=1")
    page = await pending.json()
    assert [j["job_id"] for j in page["items"]] == [ids[3]]
    assert page["items"][0]["queue_position"] == 2
    assert page["next"] == f"{V2}/jobs?state=PENDING&state=QUEUED&limit=1&after={ids[3]}"
    assert pending.headers["Link"] == f'<{page["next"]}>; rel="next"'
    assert (await listed(app="bdsf"))[0] == []
    assert (await listed(since="2100-01-01T00:00:00+00:00"))[0] == []
    assert len((await listed(since="2000-01-01T00:00:00Z", limit="10"))[0]) == 4

    for params in (
        {"state": "DONE"},
        {"since": "yesterday"},
        {"app": "nope"},
        {"limit": "0"},
        {"after": "x"},
    ):
        await problem_of(await api.client.get(f"{V2}/jobs", params=params), 400)


# -- cancel ---------------------------------------------------------------------------


async def test_cancel_then_conflict_once_ended(api: RunningApi) -> None:
    job_id = (await submit(api, await upload(api)))["job_id"]
    resp = await api.client.post(f"{V2}/jobs/{job_id}/cancel")
    assert resp.status == 202
    assert (await resp.json())["job_id"] == job_id
    await publish(api, job_id, JobState.CANCELED)
    await reaches(api, job_id, "CANCELED")
    await problem_of(await api.client.post(f"{V2}/jobs/{job_id}/cancel"), 409)
    await problem_of(await api.client.post(f"{V2}/jobs/{new_job_id()}/cancel"), 404)


# -- timings, archive, delete ---------------------------------------------------------


async def test_timings_archive_and_delete(api: RunningApi, vhost: Vhost) -> None:
    job_id = (await submit(api, await upload(api)))["job_id"]
    await problem_of(await api.client.get(f"{V2}/jobs/{job_id}/archive"), 409)
    await problem_of(await api.client.delete(f"{V2}/jobs/{job_id}"), 409)

    await publish(api, job_id, JobState.QUEUED, 1, pool="local")
    await publish(api, job_id, JobState.STARTED, 2, pool="local")
    await publish(api, job_id, JobState.RUNNING, 3, pool="local", pid=42)
    running = await reaches(api, job_id, "RUNNING")
    assert running["started_at"] == "2026-01-01T00:00:02.000+00:00"
    assert running["ended_at"] is None
    assert running["queue_position"] is None
    await problem_of(await api.client.delete(f"{V2}/jobs/{job_id}"), 409)

    await publish(api, job_id, JobState.SUCCESS, 9, exit_code=0, elapsed_s=6.5)
    done = await reaches(api, job_id, "SUCCESS")
    assert done["started_at"] == "2026-01-01T00:00:02.000+00:00"
    assert done["ended_at"] == "2026-01-01T00:00:09.000+00:00"
    assert (done["exit_code"], done["elapsed_s"]) == (0, 6.5)

    await problem_of(await api.client.get(f"{V2}/jobs/{job_id}/archive"), 404)  # no directory yet
    job_dir = api.settings.jobs_root / "anonymous" / job_id
    outputs = job_dir / "attempts" / "1"
    outputs.mkdir(parents=True)
    (outputs / "catalog.json").write_text('{"sources": []}')
    archive = await api.client.get(f"{V2}/jobs/{job_id}/archive")
    assert archive.status == 200
    assert archive.headers["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(await archive.read()), mode="r:gz") as tar:
        assert set(tar.getnames()) == {job_id, f"{job_id}/catalog.json"}

    deleted = await api.client.delete(f"{V2}/jobs/{job_id}")
    assert deleted.status == 204
    assert not job_dir.exists()
    shown = await get_job(api, job_id)
    assert shown["state"] == "DELETED"
    assert shown["deleted_at"] is not None
    assert shown["ended_at"] == done["ended_at"]
    assert (await api.client.delete(f"{V2}/jobs/{job_id}")).status == 204  # again: nothing changes
    assert (await get_job(api, job_id))["deleted_at"] == shown["deleted_at"]

    for suffix in ("archive", "catalog", "preview.png", "files", "files/catalog.json"):
        await problem_of(await api.client.get(f"{V2}/jobs/{job_id}/{suffix}"), 410)
    for suffix in ("output", "sources", "preview", "output-plot"):
        v1 = await api.client.get(f"{V1}/job/{job_id}/{suffix}")
        assert v1.status == 410
        assert v1.content_type == "application/json"
        assert "deleted" in (await v1.json())["status"]

    listed = await (await api.client.get(f"{V2}/jobs", params={"state": "DELETED"})).json()
    assert [j["job_id"] for j in listed["items"]] == [job_id]
    assert (await (await api.client.get(f"{V2}/jobs", params={"state": "SUCCESS"})).json())["items"] == []

    # A late event cannot un-delete it: here the closing event of a withdrawn retry,
    # the one event a final record still takes.
    await publish(api, job_id, JobState.FAILURE, 30, attempt=2, result_attempt=1, exit_code=1)
    await projection_idle(vhost)
    [record] = [d for d in await api.jobs_docs() if d["_id"] == job_id]
    assert (record["state"], record["attempt"], record["exit_code"]) == ("SUCCESS", 1, 0)
    assert (await get_job(api, job_id))["state"] == "DELETED"


async def test_the_same_late_event_does_close_a_job_that_is_not_deleted(api: RunningApi) -> None:
    """The counterpart of the last check above: without the delete, that event applies."""
    job_id = (await submit(api, await upload(api)))["job_id"]
    await publish(api, job_id, JobState.SUCCESS, 9, exit_code=0)
    await reaches(api, job_id, "SUCCESS")
    await publish(api, job_id, JobState.FAILURE, 30, attempt=2, result_attempt=1, exit_code=1)
    closed = await reaches(api, job_id, "FAILURE")
    assert closed["attempt"] == 2


async def test_another_users_job_is_not_found(api: RunningApi) -> None:
    job_id = new_job_id()
    await api.runtime.collection("jobs").insert_one(job_doc(job_id, owner="bob", state="SUCCESS"))
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/archive")):
        await problem_of(await api.client.request(method, f"{V2}/jobs/{job_id}{suffix}"), 404)
    await problem_of(await api.client.get(f"{V2}/jobs/not-a-job"), 404)
    assert (await (await api.client.get(f"{V2}/jobs")).json())["items"] == []


async def test_the_app_catalogue_entry(api: RunningApi) -> None:
    resp = await api.client.get(f"{V2}/apps/aegean")
    assert resp.status == 200
    app = await resp.json()
    assert app["name"] == "aegean"
    assert app["schema"]["properties"]["seedthr"]["type"] == "number"
    await problem_of(await api.client.get(f"{V2}/apps/nope"), 404)


# -- v1 /jobs without limit: every job --------------------------------------------------


def job_doc(
    job_id: str, *, owner: str = "anonymous", minute: int = 0, state: str = "PENDING"
) -> dict[str, Any]:
    return {
        "_id": job_id,
        "owner": owner,
        "app": "aegean",
        "params": {"seedthr": 5},
        "input": {"file_id": "0" * 32, "ext": "fits"},
        "tag": f"t{minute}",
        "submitted_at": T0 + timedelta(minutes=minute),
        "state": state,
        "attempt": 0,
        "retryable": False,
        "reason": "",
        "exit_code": None,
        "elapsed_s": None,
        "pid": None,
        "pool": "",
        "updated_at": T0,
    }


async def test_v1_jobs_without_limit_lists_every_job(api: RunningApi) -> None:
    count = 1203  # more than the default page, more than one cursor batch
    docs = [job_doc(new_job_id(), minute=i) for i in range(count)]
    docs.append(job_doc(new_job_id(), owner="bob", minute=9999))
    await api.runtime.collection("jobs").insert_many(docs)

    resp = await api.client.get(f"{V1}/jobs")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert "Link" not in resp.headers
    mine = sorted(docs[:count], key=lambda d: d["submitted_at"], reverse=True)
    assert await resp.json() == [job_summary(d) for d in mine]

    paged = await api.client.get(f"{V1}/jobs", params={"limit": "2"})
    assert [j["job_id"] for j in await paged.json()] == [d["_id"] for d in mine[:2]]
    assert 'rel="next"' in paged.headers["Link"]
    after = await api.client.get(f"{V1}/jobs", params={"after": mine[0]["_id"]})
    assert [j["job_id"] for j in await after.json()] == [d["_id"] for d in mine[1 : PAGE + 1]]


async def test_v1_jobs_of_nobody_is_an_empty_list(api: RunningApi) -> None:
    resp = await api.client.get(f"{V1}/jobs")
    assert resp.status == 200
    assert await resp.json() == []
