"""The api's job routes and its projection, against the real broker and database."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from caesar_common.events import JobCancelRequested, JobStateChanged, JobSubmitted, decode_as
from caesar_common.jobstate import JobState
from caesar_common.outbox import envelope_for
from tests.conftest import Vhost
from tests.integration.api_support import (
    V1,
    RunningApi,
    api_settings,
    radio_fits,
    running_api,
)
from tests.integration.event_tap import EventTap
from tests.integration.service_support import eventually, handled

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
async def api(tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str) -> AsyncIterator[RunningApi]:
    async with running_api(api_settings(tmp_path, amqp_url, mongo_url, db_prefix)) as running:
        yield running


async def upload(api: RunningApi) -> str:
    data = aiohttp.FormData()
    data.add_field("file", radio_fits(32), filename="map.fits")
    resp = await api.client.post(f"{V1}/upload", data=data)
    assert resp.status == 200
    return str((await resp.json())["uuid"])


async def submit(api: RunningApi, body: dict[str, Any]) -> dict[str, Any]:
    resp = await api.client.post(f"{V1}/job", json=body)
    assert resp.status == 202, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def status(api: RunningApi, job_id: str) -> dict[str, Any]:
    resp = await api.client.get(f"{V1}/job/{job_id}/status")
    assert resp.status == 200
    result: dict[str, Any] = await resp.json()
    return result


async def publish_state(api: RunningApi, job_id: str, state: JobState, **kw: Any) -> None:
    event = JobStateChanged(
        job_id=job_id,
        owner=kw.pop("owner", "anonymous"),
        app="aegean",
        attempt=kw.pop("attempt", 1),
        state=state,
        changed_at=T0,
        **kw,
    )
    await api.runtime.bus.publish(envelope_for(event, "runner"))


async def projection_idle(vhost: Vhost) -> None:
    """Wait until the projection queue has nothing ready or unacknowledged."""

    async def idle() -> bool:
        return vhost.queue_depths().get("api.job-states", 0) == 0

    await eventually(idle, what="projection queue to drain")


async def test_submit_data_inputs_form(api: RunningApi, amqp_url: str) -> None:
    file_id = await upload(api)
    async with EventTap(amqp_url, ["job.submitted"]) as tap:
        body = await submit(
            api,
            {"app": "aegean", "job_inputs": {"seedthr": 5}, "data_inputs": file_id, "tag": "run1"},
        )
        envelope = await tap.wait_for(lambda e: e.subject == body["job_id"])

    assert body["app"] == "aegean"
    assert body["state"] == "PENDING"
    assert body["status"] == "Job submitted with success"
    assert body["data_inputs"] == file_id
    assert body["job_inputs"] == {"seedthr": 5, "inputfile": file_id}
    assert body["tag"] == "run1"
    assert body["submit_date"]
    assert len(body["job_id"]) == 36

    event = decode_as(envelope, JobSubmitted)
    assert envelope.owner == "anonymous"
    assert event.owner == "anonymous"
    assert event.app == "aegean"
    assert event.params["seedthr"] == 5.0
    assert event.params["mergethr"] == 2.6  # effective: defaults filled in
    assert event.input.file_id == file_id
    assert event.input.ext == "fits"
    [file_doc] = await api.files_docs()
    assert event.input.sha256 == file_doc["sha256"]
    assert event.input.size_bytes == file_doc["size_bytes"]
    assert event.wall_time_s > 0
    assert event.cores >= 1
    assert event.tag == "run1"

    [job] = await api.jobs_docs()
    assert job["_id"] == body["job_id"]
    assert job["owner"] == "anonymous"
    assert job["state"] == "PENDING"
    assert job["attempt"] == 0
    assert job["params"] == {"seedthr": 5.0}  # as given (validated)
    assert job["input"] == {"file_id": file_id, "ext": "fits"}


async def test_submit_path_form(api: RunningApi, amqp_url: str) -> None:
    file_id = await upload(api)
    async with EventTap(amqp_url, ["job.submitted"]) as tap:
        body = await submit(
            api,
            {
                "app": "aegean",
                "job_inputs": {
                    "inputfile": f"/opt/caesar-rest/data/{file_id}.fits",
                    "run": True,
                    "no-logredir": True,
                    "envfile": "/home/user/setvars.sh",
                    "seedthr": 4,
                },
            },
        )
        envelope = await tap.wait_for(lambda e: e.subject == body["job_id"])
    assert body["data_inputs"] == file_id
    assert body["job_inputs"] == {
        "inputfile": file_id,
        "run": True,
        "no-logredir": True,
        "seedthr": 4,
    }
    event = decode_as(envelope, JobSubmitted)
    assert event.params["no-logredir"] is True
    assert event.params["seedthr"] == 4.0
    assert "envfile" not in event.params
    assert "inputfile" not in event.params


async def test_status_follows_events_forward_only(api: RunningApi, vhost: Vhost) -> None:
    file_id = await upload(api)
    job_id = (await submit(api, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}))["job_id"]
    assert (await status(api, job_id))["state"] == "PENDING"

    async def state_is(expected: str) -> bool:
        return bool((await status(api, job_id))["state"] == expected)

    await publish_state(api, job_id, JobState.QUEUED, pool="local")
    await eventually(lambda: state_is("QUEUED"), what="QUEUED")
    assert (await status(api, job_id))["status"] == "Job is queued"

    await publish_state(api, job_id, JobState.RUNNING, pid=11539, runner_id="r1")
    await eventually(lambda: state_is("RUNNING"), what="RUNNING")
    assert (await status(api, job_id))["pid"] == "11539"

    await publish_state(api, job_id, JobState.SUCCESS, exit_code=0, elapsed_s=27.3435878754)
    await eventually(lambda: state_is("SUCCESS"), what="SUCCESS")

    # Duplicates, a late RUNNING, a stale QUEUED and a foreign owner change nothing.
    await publish_state(api, job_id, JobState.SUCCESS, exit_code=0, elapsed_s=27.3435878754)
    await publish_state(api, job_id, JobState.RUNNING, pid=999)
    await publish_state(api, job_id, JobState.QUEUED)
    await publish_state(api, job_id, JobState.FAILURE, attempt=2, exit_code=1, owner="mallory")
    await projection_idle(vhost)
    assert await status(api, job_id) == {
        "elapsed_time": "27.3435878754",
        "exit_status": 0,
        "exit_code": 0,
        "job_id": job_id,
        "pid": "11539",
        "pool": "local",
        "state": "SUCCESS",
        "status": "Process terminated with success",
        "tag": "",
    }


async def test_events_out_of_order_converge(api: RunningApi, vhost: Vhost) -> None:
    file_id = await upload(api)
    job_id = (await submit(api, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}))["job_id"]
    await publish_state(api, job_id, JobState.FAILURE, exit_code=3)
    await publish_state(api, job_id, JobState.RUNNING, pid=5)
    await publish_state(api, job_id, JobState.QUEUED)

    async def failed() -> bool:
        return bool((await status(api, job_id))["state"] == "FAILURE")

    # Queue depths come from the broker's periodic stats: wait for the outcome first,
    # then for the queue to drain, so a late RUNNING or QUEUED would still be seen.
    await eventually(failed, what="FAILURE")
    await projection_idle(vhost)
    body = await status(api, job_id)
    assert body["state"] == "FAILURE"
    assert body["exit_code"] == 3
    assert body["status"] == "Process terminated with return code 3"


async def test_cancel_pending_then_already_completed(api: RunningApi, amqp_url: str) -> None:
    file_id = await upload(api)
    job_id = (await submit(api, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}))["job_id"]
    async with EventTap(amqp_url, ["job.cancel_requested"]) as tap:
        resp = await api.client.post(f"{V1}/job/{job_id}/cancel")
        assert resp.status == 200
        assert await resp.json() == {"status": "Job canceled and status updated in DB"}
        envelope = await tap.wait_for(lambda e: e.subject == job_id)
    event = decode_as(envelope, JobCancelRequested)
    assert event.owner == "anonymous"
    [job] = await api.jobs_docs()
    assert job["cancel_requested_at"] is not None
    assert (await status(api, job_id))["status"].startswith("Cancel requested")

    await publish_state(api, job_id, JobState.CANCELED)

    async def canceled() -> bool:
        return bool((await status(api, job_id))["state"] == "CANCELED")

    await eventually(canceled, what="CANCELED")
    resp = await api.client.get(f"{V1}/job/{job_id}/cancel")
    assert resp.status == 200
    assert await resp.json() == {
        "status": f"Job {job_id} already completed with state CANCELED, nothing to be canceled."
    }


async def test_cancel_a_queued_job(api: RunningApi) -> None:
    file_id = await upload(api)
    job_id = (await submit(api, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}))["job_id"]
    await publish_state(api, job_id, JobState.QUEUED)

    async def queued() -> bool:
        return bool((await status(api, job_id))["state"] == "QUEUED")

    await eventually(queued, what="QUEUED")
    resp = await api.client.get(f"{V1}/job/{job_id}/cancel")
    assert resp.status == 200
    assert (await resp.json())["status"] == "Job canceled and status updated in DB"


async def test_output_archive(api: RunningApi) -> None:
    file_id = await upload(api)
    job_id = (await submit(api, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}))["job_id"]
    resp = await api.client.get(f"{V1}/job/{job_id}/output")
    assert resp.status == 202
    assert await resp.json() == {
        "job_id": job_id,
        "state": "PENDING",
        "status": f"Job {job_id} not yet completed (state=PENDING), output not available",
    }

    await publish_state(api, job_id, JobState.SUCCESS, exit_code=0)

    async def done() -> bool:
        return bool((await status(api, job_id))["state"] == "SUCCESS")

    await eventually(done, what="SUCCESS")
    resp = await api.client.get(f"{V1}/job/{job_id}/output")
    assert resp.status == 404  # no job directory (yet)
    assert "not found" in (await resp.json())["status"]

    job_dir = api.settings.jobs_root / "anonymous" / job_id / "attempts" / "1"
    (job_dir / "plots").mkdir(parents=True)
    (job_dir / "catalog.json").write_text('{"sources": []}')
    (job_dir / "plots" / "preview.png").write_bytes(b"\x89PNG" + bytes(1000))
    resp = await api.client.get(f"{V1}/job/{job_id}/output")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == f"attachment; filename={job_id}.tar.gz"
    payload = await resp.read()
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
        assert set(tar.getnames()) == {
            job_id,
            f"{job_id}/catalog.json",
            f"{job_id}/plots",
            f"{job_id}/plots/preview.png",
        }
        member = tar.extractfile(f"{job_id}/catalog.json")
        assert member is not None
        assert member.read() == b'{"sources": []}'


async def _archive(api: RunningApi, job_id: str) -> dict[str, bytes]:
    resp = await api.client.get(f"{V1}/job/{job_id}/output")
    assert resp.status == 200
    with tarfile.open(fileobj=io.BytesIO(await resp.read()), mode="r:gz") as tar:
        return {m.name: (tar.extractfile(m) or io.BytesIO()).read() for m in tar.getmembers() if m.isfile()}


async def test_outputs_come_from_the_attempt_the_job_shows(api: RunningApi) -> None:
    """Attempt 1 (presumed lost) left files too; only attempt 2's outcome and files show."""
    file_id = await upload(api)
    job_id = (await submit(api, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}))["job_id"]
    attempts = api.settings.jobs_root / "anonymous" / job_id / "attempts"
    for attempt in (1, 2):
        (attempts / str(attempt)).mkdir(parents=True)
        (attempts / str(attempt) / "result.txt").write_text(f"attempt {attempt}")
    await publish_state(api, job_id, JobState.QUEUED, attempt=2)
    await publish_state(api, job_id, JobState.SUCCESS, attempt=2, exit_code=0)

    async def done() -> bool:
        return bool((await status(api, job_id))["state"] == "SUCCESS")

    await eventually(done, what="attempt 2 SUCCESS")
    assert await _archive(api, job_id) == {f"{job_id}/result.txt": b"attempt 2"}


async def test_outputs_of_a_job_run_before_attempt_directories(api: RunningApi) -> None:
    file_id = await upload(api)
    job_id = (await submit(api, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}))["job_id"]
    legacy = api.settings.jobs_root / "anonymous" / job_id
    legacy.mkdir(parents=True)
    (legacy / "manifest.json").write_text("{}")
    (legacy / "result.txt").write_text("old layout")
    await publish_state(api, job_id, JobState.SUCCESS, exit_code=0)

    async def done() -> bool:
        return bool((await status(api, job_id))["state"] == "SUCCESS")

    await eventually(done, what="SUCCESS")
    archive = await _archive(api, job_id)
    assert archive[f"{job_id}/result.txt"] == b"old layout"


async def test_unknown_jobs_are_not_found(api: RunningApi) -> None:
    unknown = "01234567-89ab-cdef-0123-456789abcdef"
    for path in ("status", "output", "cancel"):
        resp = await api.client.get(f"{V1}/job/{unknown}/{path}")
        assert resp.status == 404
        assert await resp.json() == {"status": f"Job {unknown} not found for user anonymous!"}
    resp = await api.client.get(f"{V1}/job/..%2F..%2Fetc/status")
    assert resp.status == 404


async def test_jobs_list_is_paginated_newest_first(api: RunningApi) -> None:
    file_id = await upload(api)
    ids = [
        (await submit(api, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}))["job_id"]
        for _ in range(3)
    ]
    resp = await api.client.get(f"{V1}/jobs")
    assert resp.status == 200
    text = await resp.text()
    assert str(api.settings.data_root) not in text
    assert str(api.settings.jobs_root) not in text
    listed = await resp.json()
    assert [j["job_id"] for j in listed] == ids[::-1]
    assert listed[0]["app"] == "aegean"
    assert listed[0]["data_inputs"] == file_id
    assert listed[0]["state"] == "PENDING"

    page = await api.client.get(f"{V1}/jobs", params={"limit": "2"})
    first = [j["job_id"] for j in await page.json()]
    assert first == ids[:0:-1]
    assert 'rel="next"' in page.headers["Link"]
    rest = await api.client.get(f"{V1}/jobs", params={"limit": "2", "after": first[-1]})
    assert [j["job_id"] for j in await rest.json()] == [ids[0]]

    for params in (
        {"limit": "0"},
        {"limit": "abc"},
        {"limit": "5000"},
        {"after": "nope"},
        {"after": "01234567-89ab-cdef-0123-456789abcdef"},
    ):
        bad = await api.client.get(f"{V1}/jobs", params=params)
        assert bad.status == 400, params
        assert "Invalid" in (await bad.json())["status"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("this is not json", "Invalid request data!"),
        ({"job_inputs": {"seedthr": 5}, "data_inputs": "FILE"}, "No app name found in request!"),
        ({"app": "aegean", "data_inputs": "FILE"}, "No job inputs found in request!"),
        ({"app": "aegean", "job_inputs": {"seedthr": 5}}, "No input file given"),
        ({"app": "nope", "job_inputs": {}, "data_inputs": "FILE"}, "Unknown app nope!"),
        (
            {"app": "aegean", "job_inputs": {}, "data_inputs": "0123456789abcdef0123456789abcdef"},
            "File with uuid 0123456789abcdef0123456789abcdef not found on the system!",
        ),
        ({"app": "aegean", "job_inputs": {"seedthr": "5"}, "data_inputs": "FILE"}, "seedthr"),
        ({"app": "aegean", "job_inputs": {"seedthr": 20000}, "data_inputs": "FILE"}, "seedthr"),
        ({"app": "aegean", "job_inputs": {"ncores": 1.5}, "data_inputs": "FILE"}, "ncores"),
        (
            {"app": "aegean", "job_inputs": {"bogus": 1, "wrong": True}, "data_inputs": "FILE"},
            "Unknown option(s): bogus, wrong",
        ),
        ({"app": "aegean", "job_inputs": [], "data_inputs": "FILE"}, "job_inputs must be"),
        ({"app": ["aegean"], "job_inputs": {}, "data_inputs": "FILE"}, "app must be a string"),
        (
            {"app": "aegean", "job_inputs": {"inputfile": "/etc/passwd"}},
            "Invalid input file /etc/passwd",
        ),
        (
            {"app": "caesar", "job_inputs": {"no-mpi": True}, "data_inputs": "FILE"},
            "App caesar needs a k8s executor, which this deployment does not have",
        ),
    ],
)
async def test_bad_submissions_store_nothing(api: RunningApi, amqp_url: str, body: Any, message: str) -> None:
    file_id = await upload(api)
    if isinstance(body, dict):
        body = {k: (file_id if v == "FILE" else v) for k, v in body.items()}
        resp = await api.client.post(f"{V1}/job", json=body)
    else:
        resp = await api.client.post(f"{V1}/job", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert resp.content_type == "application/json"
    assert message in (await resp.json())["status"]
    assert await api.jobs_docs() == []


async def test_input_must_be_a_live_file_of_the_caller(api: RunningApi) -> None:
    file_id = await upload(api)
    # Another user's file: same id space, never visible to this caller.
    await api.runtime.collection("files").update_one({"_id": file_id}, {"$set": {"owner": "bob"}})
    resp = await api.client.post(
        f"{V1}/job", json={"app": "aegean", "job_inputs": {}, "data_inputs": file_id}
    )
    assert resp.status == 400
    await api.runtime.collection("files").update_one({"_id": file_id}, {"$set": {"owner": "anonymous"}})
    assert (await api.client.get(f"{V1}/delete/{file_id}")).status == 200
    resp = await api.client.post(
        f"{V1}/job", json={"app": "aegean", "job_inputs": {}, "data_inputs": file_id}
    )
    assert resp.status == 400
    assert await api.jobs_docs() == []


async def test_apps_and_describe(api: RunningApi) -> None:
    resp = await api.client.get(f"{V1}/apps")
    apps = (await resp.json())["apps"]
    assert {"caesar", "mrcnn", "aegean", "cutex"} <= set(apps)
    described = await (await api.client.get(f"{V1}/app/mrcnn/describe")).json()
    assert described["scoreThr"]["type"] == "float"
    assert described["scoreThr"]["default"] == 0.7
    resp = await api.client.get(f"{V1}/app/nope/describe")
    assert resp.status == 400
    assert await resp.json() == {"status": "Unknown app nope!"}


async def test_provisional_failure_is_never_shown(api: RunningApi) -> None:
    """A retryable failure (runner lost) is undone by a retry: clients only see the retry."""
    file_id = await upload(api)
    job_id = (await submit(api, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id}))["job_id"]
    await publish_state(api, job_id, JobState.RUNNING, pid=7, runner_id="r1")

    async def state_is(expected: str) -> bool:
        return bool((await status(api, job_id))["state"] == expected)

    await eventually(lambda: state_is("RUNNING"), what="RUNNING")
    before = handled("api.job-states")
    await publish_state(api, job_id, JobState.FAILURE, reason="runner lost", retryable=True)
    # Once the projection has handled (and acked) the provisional failure, the job must
    # still read RUNNING (a broken projection shows FAILURE here).
    await eventually(lambda: handled("api.job-states") > before, what="the failure handled")
    seen = {(await status(api, job_id))["state"]}
    await publish_state(api, job_id, JobState.QUEUED, attempt=2)
    await eventually(lambda: state_is("QUEUED"), what="attempt 2 QUEUED")
    await publish_state(api, job_id, JobState.SUCCESS, attempt=2, exit_code=0, elapsed_s=1.5)
    await eventually(lambda: state_is("SUCCESS"), what="attempt 2 SUCCESS")
    assert set(seen) == {"RUNNING"}
    final = await status(api, job_id)
    assert final["pid"] == ""  # attempt 2's record starts clean: no pid of attempt 1
    assert final["exit_code"] == 0
