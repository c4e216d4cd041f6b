"""The v2 job and file shapes, and the timings the projection records (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter

from caesar_api.domain.projection import attempt_started_at, plan_moves, transition_fields
from caesar_api.domain.responses import file_v2, job_v2, shown_state, v2_time
from caesar_api.entrypoints.routes.v2_files import content_disposition
from caesar_api.openapi.v2_models import FileV2, JobV2
from caesar_common.events import JobStateChanged
from caesar_common.jobstate import JobState

T0 = datetime(2026, 11, 30, 17, 4, 5, 123000)
JOB_ID = "01234567-89ab-cdef-0123-456789abcdef"
FILE_ID = "0123456789abcdef0123456789abcdef"


def record(**extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "_id": JOB_ID,
        "owner": "alice",
        "app": "aegean",
        "params": {"seedthr": 6},
        "input": {"file_id": FILE_ID, "ext": "fits"},
        "tag": "run1",
        "submitted_at": T0,
        "state": "PENDING",
        "attempt": 0,
        "retryable": False,
        "reason": "",
        "exit_code": None,
        "elapsed_s": None,
        "pool": "",
        "updated_at": T0,
    }
    job.update(extra)
    return job


def test_v2_times_carry_their_offset() -> None:
    assert v2_time(T0) == "2026-11-30T17:04:05.123+00:00"
    assert v2_time(T0.replace(tzinfo=UTC)) == "2026-11-30T17:04:05.123+00:00"
    assert v2_time(None) is None


def test_job_v2_has_every_field_of_the_contract() -> None:
    body = job_v2(record(), queue_position=3)
    assert body == {
        "job_id": JOB_ID,
        "app": "aegean",
        "state": "PENDING",
        "attempt": 0,
        "pool": None,
        "file_id": FILE_ID,
        "options": {"seedthr": 6},
        "tag": "run1",
        "reason": "",
        "hold_reason": None,
        "queue_position": 3,
        "exit_code": None,
        "elapsed_s": None,
        "submitted_at": "2026-11-30T17:04:05.123+00:00",
        "started_at": None,
        "ended_at": None,
        "updated_at": "2026-11-30T17:04:05.123+00:00",
        "deleted_at": None,
        "links": {
            "self": f"/api/v2/jobs/{JOB_ID}",
            "events": f"/api/v2/jobs/{JOB_ID}/events",
            "files": f"/api/v2/jobs/{JOB_ID}/files",
            "catalog": f"/api/v2/jobs/{JOB_ID}/catalog",
            "preview": f"/api/v2/jobs/{JOB_ID}/preview.png",
            "archive": f"/api/v2/jobs/{JOB_ID}/archive",
        },
    }


def test_an_ended_job_shows_its_outcome_and_timings() -> None:
    job = record(
        state="SUCCESS",
        attempt=1,
        pool="local",
        exit_code=0,
        elapsed_s=12.5,
        started_at=T0 + timedelta(seconds=1),
        running_at=T0 + timedelta(seconds=2),
        ended_at=T0 + timedelta(seconds=14),
    )
    body = job_v2(job)
    assert body["state"] == "SUCCESS"
    assert body["pool"] == "local"
    assert (body["exit_code"], body["elapsed_s"]) == (0, 12.5)
    assert body["started_at"] == "2026-11-30T17:04:06.123+00:00"
    assert body["ended_at"] == "2026-11-30T17:04:19.123+00:00"
    assert body["queue_position"] is None


def test_a_deleted_job_is_shown_deleted_whatever_its_stored_state() -> None:
    job = record(state="FAILURE", attempt=1, deleted_at=T0 + timedelta(minutes=1))
    assert shown_state(job) == "DELETED"
    body = job_v2(job)
    assert body["state"] == "DELETED"
    assert body["deleted_at"] == "2026-11-30T17:05:05.123+00:00"


def test_a_timed_out_job_keeps_the_v1_spelling() -> None:
    assert job_v2(record(state="TIMED-OUT", attempt=1))["state"] == "TIMED-OUT"


def test_a_held_job_says_why() -> None:
    body = job_v2(record(state="HELD", reason="jobs 5/5"))
    assert body["hold_reason"] == "jobs 5/5"


def test_the_openapi_models_accept_the_bodies() -> None:
    """What the routes send fits what the document promises (schemathesis checks it live too)."""
    jobs = [
        job_v2(record(), queue_position=1),
        job_v2(record(state="SUCCESS", attempt=2, pool="slurm", exit_code=0, ended_at=T0)),
        job_v2(record(state="CANCELED", attempt=1, deleted_at=T0)),
    ]
    for body in jobs:
        TypeAdapter(JobV2).validate_python(body)
        Draft202012Validator(JobV2.model_json_schema(mode="serialization")).validate(body)
    file = file_v2(
        {
            "_id": FILE_ID,
            "filename_orig": "map.fits",
            "ext": "fits",
            "size_bytes": 4096,
            "tag": "",
            "uploaded_at": T0,
            "fits": {"naxis": 2},
        }
    )
    Draft202012Validator(FileV2.model_json_schema(mode="serialization")).validate(file)
    assert file["links"] == {
        "self": f"/api/v2/files/{FILE_ID}",
        "content": f"/api/v2/files/{FILE_ID}/content",
    }
    assert (file["filename"], file["format"], file["size_bytes"]) == ("map.fits", "fits", 4096)


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("map.fits", 'attachment; filename="map.fits"'),
        ('we"ird;.fits', "attachment; filename=\"we_ird_.fits\"; filename*=UTF-8''we%22ird%3B.fits"),
        (
            "carte-été.fits",
            "attachment; filename=\"carte-_t_.fits\"; filename*=UTF-8''carte-%C3%A9t%C3%A9.fits",
        ),
        ("", 'attachment; filename="file"'),
    ],
)
def test_content_disposition_names_the_original_file_safely(name: str, header: str) -> None:
    assert content_disposition(name) == header


# -- timings recorded by the projection -------------------------------------------------


def changed(state: JobState, seconds: int, *, attempt: int = 1, retryable: bool = False) -> JobStateChanged:
    return JobStateChanged(
        job_id=JOB_ID,
        owner="alice",
        app="aegean",
        attempt=attempt,
        state=state,
        retryable=retryable,
        changed_at=T0.replace(tzinfo=UTC) + timedelta(seconds=seconds),
    )


def at(seconds: int) -> datetime:
    return T0.replace(tzinfo=UTC) + timedelta(seconds=seconds)


def fold(job: dict[str, Any], *events: JobStateChanged) -> dict[str, Any]:
    """Apply events as the projection would (planned on the record, written field by field)."""
    for move in plan_moves({JOB_ID: job}, events):
        job = {**job, **move.fields}
    return job


def test_started_at_is_the_attempts_started_and_ended_at_its_final_state() -> None:
    job = fold(
        record(),
        changed(JobState.QUEUED, 1),
        changed(JobState.STARTED, 2),
        changed(JobState.RUNNING, 3),
        changed(JobState.SUCCESS, 9),
    )
    assert job["started_at"] == at(2)
    assert job["running_at"] == at(3)
    assert attempt_started_at(job) == at(2)
    assert job["ended_at"] == at(9)


def test_without_started_running_is_when_the_attempt_started() -> None:
    job = fold(record(), changed(JobState.RUNNING, 3), changed(JobState.STARTED, 2))  # STARTED late
    assert job.get("started_at") is None
    assert attempt_started_at(job) == at(3)


def test_a_queued_job_has_not_started_or_ended() -> None:
    fields = transition_fields(changed(JobState.QUEUED, 1), new_attempt=True)
    assert fields["started_at"] is None
    assert fields["running_at"] is None
    assert fields["ended_at"] is None


def test_a_new_attempt_starts_its_timings_afresh() -> None:
    first = fold(record(), changed(JobState.STARTED, 2), changed(JobState.RUNNING, 3))
    retried = fold(first, changed(JobState.QUEUED, 20, attempt=2))
    assert attempt_started_at(retried) is None
    again = fold(retried, changed(JobState.RUNNING, 25, attempt=2), changed(JobState.FAILURE, 30, attempt=2))
    assert attempt_started_at(again) == at(25)
    assert again["ended_at"] == at(30)


def test_a_later_event_of_the_same_attempt_keeps_the_start() -> None:
    fields = transition_fields(changed(JobState.SUCCESS, 9), new_attempt=False)
    assert "started_at" not in fields
    assert "running_at" not in fields
    assert fields["ended_at"] == at(9)


def test_a_provisional_failure_does_not_end_the_job() -> None:
    fields = transition_fields(changed(JobState.FAILURE, 9, retryable=True), new_attempt=False)
    assert fields["ended_at"] is None
    # and the projection does not apply it at all
    assert (
        plan_moves(
            {JOB_ID: record(state="RUNNING", attempt=1)}, [changed(JobState.FAILURE, 9, retryable=True)]
        )
        == []
    )


def test_a_job_canceled_before_it_ran_has_ended_but_never_started() -> None:
    job = fold(record(), changed(JobState.CANCELED, 4))
    assert attempt_started_at(job) is None
    assert job["ended_at"] == at(4)
