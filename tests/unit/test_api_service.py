"""The api's use cases against in-memory fakes: submit, upload, cancel, delete, projection.

No broker, database or disk: the fakes of ``tests/unit/fakes_api.py`` stand in for the
repositories and storage, and record the events each write would publish.
"""

from __future__ import annotations

import errno
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from caesar_api.adapters.fits import NotFitsError
from caesar_api.domain.errors import ApiError
from caesar_api.domain.jobs import parse_job_request
from caesar_api.service import files as file_cases
from caesar_api.service import jobs as job_cases
from caesar_api.service.files import ReceivedUpload
from caesar_api.service.projection import apply_job_state
from caesar_api.service.reannounce import reannounce_pending
from caesar_common.events import FileDeleted, FileUploaded, JobCancelRequested, JobStateChanged, JobSubmitted
from caesar_common.ids import new_file_id
from caesar_common.jobstate import JobState
from tests.unit.fakes_api import FakeFiles, FakeJobs, FakePendingUpload, FakeSpace

OWNER = "alice"
RUNNABLE = ("local", "slurm")
FACTS: dict[str, Any] = {
    "celestial": {"ctype": ["RA---SIN", "DEC--SIN"]},
    "beam": {"bmaj": 7.2, "bmin": 5.4, "bpa": 30.0},
    "pixels": {"all_blank": False, "constant": False},
}


def stored_file(files: FakeFiles, *, owner: str = OWNER, ext: str = "fits", fits: Any = FACTS) -> str:
    file_id = new_file_id()
    files.records[file_id] = {
        "_id": file_id,
        "owner": owner,
        "filename_orig": f"map.{ext}",
        "ext": ext,
        "size_bytes": 4096,
        "sha256": "ab" * 32,
        "tag": "",
        "uploaded_at": datetime(2025, 1, 1, tzinfo=UTC),
        "fits": fits,
        "deleted": False,
    }
    return file_id


async def submit(
    jobs: FakeJobs, files: FakeFiles, body: dict[str, Any], owner: str = OWNER
) -> dict[str, Any]:
    return await job_cases.submit(
        parse_job_request(body), owner, jobs=jobs, files=files, runnable_executors=RUNNABLE
    )


# --- submit -----------------------------------------------------------------------------


async def test_submit_records_a_pending_job_and_announces_it() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    file_id = stored_file(files)
    record = await submit(
        jobs, files, {"app": "sfind", "job_inputs": {}, "data_inputs": file_id, "tag": "t1"}
    )
    assert record["state"] == "PENDING"
    assert record["attempt"] == 0
    assert record["input"] == {"file_id": file_id, "ext": "fits"}
    assert jobs.records[record["_id"]]["tag"] == "t1"
    [event] = jobs.published
    assert isinstance(event, JobSubmitted)
    assert event.job_id == record["_id"]
    assert event.input.sha256 == "ab" * 32
    assert event.submitted_at == record["submitted_at"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"app": "nope", "job_inputs": {}}, "Unknown app nope!"),
        ({"app": "sfind", "job_inputs": {"no-such-option": 1}}, "no-such-option"),
    ],
)
async def test_submit_refuses_before_writing_anything(body: dict[str, Any], message: str) -> None:
    jobs, files = FakeJobs(), FakeFiles()
    body = {**body, "data_inputs": stored_file(files)}
    with pytest.raises(ApiError) as caught:
        await submit(jobs, files, body)
    assert caught.value.http_status == 400
    assert message in caught.value.message
    assert not jobs.records
    assert not jobs.published


async def test_submit_refuses_another_users_file_as_unknown() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    file_id = stored_file(files, owner="bob")
    with pytest.raises(ApiError, match="not found on the system") as caught:
        await submit(jobs, files, {"app": "sfind", "job_inputs": {}, "data_inputs": file_id})
    assert caught.value.http_status == 400


async def test_submit_refuses_an_image_without_a_beam_naming_the_keywords() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    file_id = stored_file(files, fits={**FACTS, "beam": None})
    with pytest.raises(ApiError, match="BMAJ, BMIN"):
        await submit(jobs, files, {"app": "aegean", "job_inputs": {}, "data_inputs": file_id})


async def test_submit_refuses_an_app_this_deployment_cannot_run() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    file_id = stored_file(files)
    with pytest.raises(ApiError, match="executor, which this deployment does not have"):
        await job_cases.submit(
            parse_job_request({"app": "sfind", "job_inputs": {}, "data_inputs": file_id}),
            OWNER,
            jobs=jobs,
            files=files,
            runnable_executors=("kubernetes",),
        )


# --- cancel -----------------------------------------------------------------------------


async def submitted(jobs: FakeJobs, files: FakeFiles) -> str:
    record = await submit(jobs, files, {"app": "sfind", "job_inputs": {}, "data_inputs": stored_file(files)})
    jobs.published.clear()
    return str(record["_id"])


async def test_cancel_of_a_pending_job_is_requested_once() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    job_id = await submitted(jobs, files)
    outcome = await job_cases.cancel(jobs, OWNER, job_id)
    assert outcome.requested
    assert outcome.message == job_cases.CANCEL_REQUESTED
    [event] = jobs.published
    assert isinstance(event, JobCancelRequested)
    assert jobs.records[job_id]["cancel_requested_at"] is not None


async def test_cancel_of_an_ended_job_says_so_and_publishes_nothing() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    job_id = await submitted(jobs, files)
    jobs.records[job_id]["state"] = JobState.SUCCESS.value
    outcome = await job_cases.cancel(jobs, OWNER, job_id)
    assert not outcome.requested
    assert "already completed with state SUCCESS" in outcome.message
    assert not jobs.published


async def test_cancel_rereads_a_job_that_ended_meanwhile() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    job_id = await submitted(jobs, files)

    def runner_finishes(stored: dict[str, Any]) -> None:
        stored["state"] = JobState.SUCCESS.value  # between the read and the guarded write

    jobs.before_write = runner_finishes
    outcome = await job_cases.cancel(jobs, OWNER, job_id)
    assert not outcome.requested
    assert not jobs.published


async def test_cancel_of_another_users_job_is_the_unknown_job_404() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    job_id = await submitted(jobs, files)
    with pytest.raises(ApiError) as caught:
        await job_cases.cancel(jobs, "mallory", job_id)
    assert caught.value.http_status == 404
    assert await job_cases.cancel(jobs, "carol", job_id, admin=True)


async def test_list_pages_newest_first_and_refuses_an_unknown_cursor() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    ids = [await submitted(jobs, files) for _ in range(3)]
    for n, job_id in enumerate(ids):
        jobs.records[job_id]["submitted_at"] = datetime(2025, 1, 1 + n, tzinfo=UTC)
    first = await job_cases.list_page(jobs, OWNER, 2, None)
    assert [j["_id"] for j in first.items] == [ids[2], ids[1]]
    assert first.more
    second = await job_cases.list_page(jobs, OWNER, 2, ids[1])
    assert [j["_id"] for j in second.items] == [ids[0]]
    assert not second.more
    with pytest.raises(ApiError, match="Invalid after cursor"):
        await job_cases.list_page(jobs, "bob", 2, ids[1])


# --- upload and delete -------------------------------------------------------------------


def received(pending: FakePendingUpload, ext: str = "fits") -> ReceivedUpload:
    return ReceivedUpload(
        owner=OWNER,
        file_id=new_file_id(),
        filename=f"map.{ext}",
        ext=ext,
        tag="field 1",
        sha256="cd" * 32,
        pending=pending,
    )


async def facts_of(path: Path) -> dict[str, Any]:
    return FACTS


async def not_fits(path: Path) -> dict[str, Any]:
    raise NotFitsError("no SIMPLE card")


async def test_upload_keeps_the_file_and_records_it_with_its_event() -> None:
    files, space = FakeFiles(), FakeSpace()
    pending = FakePendingUpload(space, size=2880)
    upload = received(pending)
    record = await file_cases.upload(upload, files=files, space=space, read_facts=facts_of)
    assert pending.committed == space.path_of(OWNER, upload.file_id, "fits")
    assert record["fits"] == FACTS
    assert record["size_bytes"] == 2880
    [event] = files.published
    assert isinstance(event, FileUploaded)
    assert (event.file_id, event.sha256, event.uploaded_at) == (
        upload.file_id,
        "cd" * 32,
        record["uploaded_at"],
    )


async def test_upload_of_a_fake_fits_is_refused_and_leaves_nothing() -> None:
    files, space = FakeFiles(), FakeSpace()
    pending = FakePendingUpload(space, size=10)
    with pytest.raises(ApiError, match=r"Invalid FITS file map\.fits") as caught:
        await file_cases.upload(received(pending), files=files, space=space, read_facts=not_fits)
    assert caught.value.http_status == 400
    assert pending.discarded
    assert not space.stored
    assert not files.records


async def test_upload_on_a_full_disk_is_507_and_leaves_nothing() -> None:
    files, space = FakeFiles(), FakeSpace()
    pending = FakePendingUpload(space, size=10, commit_error=OSError(errno.ENOSPC, "No space left"))
    with pytest.raises(ApiError) as caught:
        await file_cases.upload(received(pending, "png"), files=files, space=space, read_facts=facts_of)
    assert caught.value.http_status == 507
    assert pending.discarded
    assert not files.records


async def test_upload_whose_record_cannot_be_written_removes_the_stored_file() -> None:
    files, space = FakeFiles(), FakeSpace()
    files.fail_next_add = ConnectionError("database gone")
    with pytest.raises(ConnectionError):
        await file_cases.upload(received(FakePendingUpload(space, size=10), "png"), files=files, space=space)
    assert not space.stored
    assert not files.published


async def test_delete_marks_the_record_publishes_once_and_removes_the_bytes() -> None:
    files, space = FakeFiles(), FakeSpace()
    record = await file_cases.upload(
        received(FakePendingUpload(space, size=10), "png"), files=files, space=space
    )
    files.published.clear()
    await file_cases.delete(files, space, OWNER, record["_id"])
    assert files.records[record["_id"]]["deleted"]
    assert not space.stored
    assert [type(e) for e in files.published] == [FileDeleted]
    with pytest.raises(ApiError) as caught:
        await file_cases.delete(files, space, OWNER, record["_id"])
    assert caught.value.http_status == 404
    assert len(files.published) == 1


async def test_a_deleted_file_still_works_as_a_list_cursor() -> None:
    files = FakeFiles()
    old, new = stored_file(files), stored_file(files)
    files.records[new]["uploaded_at"] = datetime(2025, 2, 1, tzinfo=UTC)
    files.records[new]["deleted"] = True
    page = await file_cases.list_page(files, OWNER, 10, new)
    assert [f["_id"] for f in page.items] == [old]


# --- projection ---------------------------------------------------------------------------


def state_event(job_id: str, state: JobState, attempt: int = 1, **fields: Any) -> JobStateChanged:
    return JobStateChanged(
        job_id=job_id,
        owner=OWNER,
        app="sfind",
        state=state,
        attempt=attempt,
        changed_at=datetime(2025, 1, 2, tzinfo=UTC),
        **fields,
    )


async def test_projection_moves_forward_and_ignores_duplicates_and_late_events() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    job_id = await submitted(jobs, files)
    assert await apply_job_state(jobs, state_event(job_id, JobState.RUNNING, pid=42))
    assert await apply_job_state(jobs, state_event(job_id, JobState.SUCCESS, exit_code=0))
    assert not await apply_job_state(jobs, state_event(job_id, JobState.SUCCESS, exit_code=0))
    assert not await apply_job_state(jobs, state_event(job_id, JobState.RUNNING))
    record = jobs.records[job_id]
    assert (record["state"], record["pid"], record["exit_code"]) == ("SUCCESS", 42, 0)


async def test_projection_never_shows_a_provisional_failure() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    job_id = await submitted(jobs, files)
    event = state_event(job_id, JobState.FAILURE, retryable=True, reason="runner lost")
    assert not await apply_job_state(jobs, event)
    assert jobs.records[job_id]["state"] == "PENDING"


async def test_projection_ignores_an_event_with_a_foreign_owner() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    job_id = await submitted(jobs, files)
    event = state_event(job_id, JobState.RUNNING).model_copy(update={"owner": "mallory"})
    assert not await apply_job_state(jobs, event)


async def test_projection_of_a_new_attempt_clears_the_old_one_and_is_never_undone() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    job_id = await submitted(jobs, files)
    assert await apply_job_state(jobs, state_event(job_id, JobState.RUNNING, pid=42))
    # Attempt 2 opens after attempt 1 was lost: attempt 1's measurements go.
    assert await apply_job_state(jobs, state_event(job_id, JobState.QUEUED, attempt=2))
    record = jobs.records[job_id]
    assert (record["state"], record["attempt"], record["pid"]) == ("QUEUED", 2, None)
    # A late event of attempt 1 (its RUNNING, even its SUCCESS) changes nothing.
    assert not await apply_job_state(jobs, state_event(job_id, JobState.SUCCESS, exit_code=0))
    # A STARTED of attempt 2 arriving first still applies as the same attempt.
    assert await apply_job_state(jobs, state_event(job_id, JobState.STARTED, attempt=2))
    assert jobs.records[job_id]["state"] == "STARTED"


async def test_a_job_left_pending_is_announced_again_once_per_period() -> None:
    jobs, files = FakeJobs(), FakeFiles()
    job_id = await submitted(jobs, files)
    moved_on = await submitted(jobs, files)
    assert await apply_job_state(jobs, state_event(moved_on, JobState.QUEUED))
    submitted_at = jobs.records[job_id]["submitted_at"]
    jobs.published.clear()
    after = timedelta(minutes=2)
    assert await reannounce_pending(jobs, submitted_at + timedelta(minutes=1), after) == 0
    assert await reannounce_pending(jobs, submitted_at + timedelta(minutes=3), after) == 1
    [again] = jobs.published
    assert isinstance(again, JobSubmitted)
    assert again.job_id == job_id  # the QUEUED job is not announced again
    assert await reannounce_pending(jobs, submitted_at + timedelta(minutes=4), after) == 0
    assert await reannounce_pending(jobs, submitted_at + timedelta(minutes=5, seconds=1), after) == 1
