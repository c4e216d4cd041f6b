"""Messages and their CloudEvents-style envelope: round trips, routing, compatibility."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from caesar_common.bus import runner_pool_queue
from caesar_common.events import (
    MESSAGE_TYPES,
    Envelope,
    FileDeleted,
    FileUploaded,
    InputFile,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    Message,
    OutputFile,
    PoolStatus,
    QuotaChanged,
    RunJob,
    RunnerHeartbeat,
    RunningJobRef,
    decode,
    decode_as,
)
from caesar_common.jobstate import JobPosition, JobState

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
FILE_ID = "0123456789abcdef0123456789abcdef"
JOB_ID = "01234567-89ab-cdef-0123-456789abcdef"
OWNER = "5f1c0e8e-7d0a-4d1e-9a0b-3b2c1d0e9f8a"
TRACE = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
}
INPUT = InputFile(file_id=FILE_ID, ext="fits", size_bytes=2048, sha256="ab" * 32)


def _samples() -> dict[type[Message], Message]:
    return {
        FileUploaded: FileUploaded(
            file_id=FILE_ID,
            owner=OWNER,
            filename="galaxy map.fits",
            ext="fits",
            size_bytes=2048,
            sha256="ab" * 32,
            tag="survey-\u03b1",
            uploaded_at=T0,
        ),
        FileDeleted: FileDeleted(file_id=FILE_ID, owner=OWNER, size_bytes=2048),
        JobSubmitted: JobSubmitted(
            job_id=JOB_ID,
            owner=OWNER,
            app="caesar",
            params={"seedThr": 5.0, "mergeThr": 2.6, "nested": {"a": [1, 2, None]}, "flag": True},
            input=INPUT,
            tag="t",
            wall_time_s=600,
            cores=2,
            memory_mb=1024,
            submitted_at=T0,
        ),
        JobCancelRequested: JobCancelRequested(job_id=JOB_ID, owner=OWNER, requested_at=T0),
        JobStateChanged: JobStateChanged(
            job_id=JOB_ID,
            owner=OWNER,
            app="caesar",
            attempt=2,
            state=JobState.TIMED_OUT,
            reason="wall time exceeded",
            retryable=True,
            changed_at=T0,
            pool="local",
            runner_id="runner-1",
            pid=4242,
            exit_code=-9,
            elapsed_s=600.5,
            cpu_s=1199.25,
            peak_rss_bytes=123_456_789,
            outputs=[
                OutputFile(name="catalog.json", size_bytes=10, sha256="cd" * 32),
                OutputFile(name="out.fits", size_bytes=99),
            ],
        ),
        RunJob: RunJob(
            job_id=JOB_ID,
            owner=OWNER,
            app="caesar",
            attempt=3,
            params={"seedThr": 5},
            input=INPUT,
            wall_time_s=60,
            pool="local",
        ),
        RunnerHeartbeat: RunnerHeartbeat(
            runner_id="runner-1",
            pool="slurm",
            slots_total=4,
            slots_free=1,
            running=[RunningJobRef(job_id=JOB_ID, attempt=1)],
            sent_at=T0,
            accepting=False,
        ),
        PoolStatus: PoolStatus(
            pool="slurm",
            live_runners=0,
            slots_total=0,
            runnerless_since=T0,
            max_wait_s=86400.0,
            reason="no live runner in pool 'slurm' since 2025-01-01 00:00:00 UTC",
            sent_at=T0,
        ),
        QuotaChanged: QuotaChanged(
            owner=OWNER,
            over=True,
            reason="over quota: cpu_hours_month 12.5 of 10",
            usage={"running_jobs": 1.0, "cpu_hours_month": 12.5, "stored_bytes": 2048.0},
            limits={"running_jobs": None, "cpu_hours_month": 10.0, "stored_bytes": None},
            revision=3,
            evaluated_at=T0,
        ),
    }


SAMPLES = _samples()
EXPECTED_TYPES = {
    FileUploaded: ("org.caesar.file.uploaded.v1", "file.uploaded", FILE_ID, OWNER),
    FileDeleted: ("org.caesar.file.deleted.v1", "file.deleted", FILE_ID, OWNER),
    JobSubmitted: ("org.caesar.job.submitted.v1", "job.submitted", JOB_ID, OWNER),
    JobCancelRequested: (
        "org.caesar.job.cancel_requested.v1",
        "job.cancel_requested",
        JOB_ID,
        OWNER,
    ),
    JobStateChanged: ("org.caesar.job.state.v1", "job.state.timed-out", JOB_ID, OWNER),
    RunJob: ("org.caesar.run_job.v1", "runner.local", JOB_ID, OWNER),
    RunnerHeartbeat: ("org.caesar.runner.heartbeat.v1", "runner.heartbeat", "runner-1", ""),
    PoolStatus: ("org.caesar.pool.status.v1", "pool.status", "slurm", ""),
    QuotaChanged: ("org.caesar.quota.changed.v1", "quota.changed", OWNER, OWNER),
}


def _by_type(kinds: Any) -> list[Any]:
    return [pytest.param(k, id=k.__name__) for k in kinds]


def test_samples_cover_every_message_type() -> None:
    """Adding a message type without adding it here fails this test."""
    assert set(MESSAGE_TYPES.values()) == set(SAMPLES) == set(EXPECTED_TYPES)
    assert len(MESSAGE_TYPES) == len(SAMPLES)


@pytest.mark.parametrize("kind", _by_type(SAMPLES))
def test_envelope_round_trip(kind: type[Message]) -> None:
    message = SAMPLES[kind]
    envelope = Envelope.wrap(message, "scheduler", TRACE)
    body = envelope.to_bytes()
    assert isinstance(body, bytes)
    back = Envelope.from_bytes(body)
    assert back == envelope
    decoded = decode(back)
    assert type(decoded) is kind
    assert decoded == message
    assert decode_as(back, kind) == message
    # And the round trip is stable: re-encoding gives the same bytes.
    assert back.to_bytes() == body


@pytest.mark.parametrize("kind", _by_type(SAMPLES))
def test_envelope_attributes(kind: type[Message]) -> None:
    event_type, routing_key, subject, owner = EXPECTED_TYPES[kind]
    before = datetime.now(UTC)
    envelope = Envelope.wrap(SAMPLES[kind], "api")
    assert envelope.specversion == "1.0"
    assert envelope.type == event_type
    assert MESSAGE_TYPES[event_type] is kind
    assert envelope.routing_key == routing_key
    assert envelope.subject == subject
    assert envelope.owner == owner
    assert envelope.source == "api"
    assert envelope.datacontenttype == "application/json"
    assert envelope.time.tzinfo is not None
    assert before <= envelope.time <= datetime.now(UTC)
    assert len(envelope.id) == 32
    int(envelope.id, 16)
    assert envelope.traceparent is None
    assert envelope.tracestate is None
    assert envelope.trace_carrier() == {}


def test_envelope_ids_are_unique() -> None:
    message = SAMPLES[FileDeleted]
    ids = {Envelope.wrap(message, "api").id for _ in range(200)}
    assert len(ids) == 200


@pytest.mark.parametrize("kind", _by_type(SAMPLES))
def test_event_type_carries_the_version(kind: type[Message]) -> None:
    assert kind.version == 1
    assert kind.event_type() == f"org.caesar.{kind.type_name}.v1"


def test_a_new_version_is_a_new_type() -> None:
    class JobSubmittedV2(JobSubmitted):
        version: ClassVar[int] = 2

    assert JobSubmittedV2.event_type() == "org.caesar.job.submitted.v2"
    envelope = Envelope.wrap(JobSubmittedV2(**SAMPLES[JobSubmitted].model_dump()), "api")
    assert envelope.type == "org.caesar.job.submitted.v2"
    with pytest.raises(KeyError):
        decode(envelope)


@pytest.mark.parametrize("state", list(JobState), ids=lambda s: s.value)
def test_state_routing_keys(state: JobState) -> None:
    base = SAMPLES[JobStateChanged]
    assert isinstance(base, JobStateChanged)
    message = base.model_copy(update={"state": state})
    expected = "job.state." + state.value.lower()
    assert message.routing_key() == expected
    assert Envelope.wrap(message, "runner").routing_key == expected
    assert message.position == JobPosition(2, state, True)


def test_timed_out_routing_key_keeps_the_hyphen() -> None:
    assert SAMPLES[JobStateChanged].routing_key() == "job.state.timed-out"


@pytest.mark.parametrize("pool", ["local", "slurm", "gpu-a100"])
def test_run_job_goes_to_its_pool_queue(pool: str) -> None:
    base = SAMPLES[RunJob]
    message = base.model_copy(update={"pool": pool})
    assert message.routing_key() == f"runner.{pool}" == runner_pool_queue(pool)


def test_forward_compatible_envelope_and_data() -> None:
    """A newer producer adds fields at every level; this consumer ignores them."""
    envelope = Envelope.wrap(SAMPLES[JobSubmitted], "api", TRACE)
    raw = json.loads(envelope.to_bytes())
    raw["dataschema"] = "https://example.org/schemas/job.submitted.v1.json"
    raw["partitionkey"] = {"nested": [1, 2]}
    raw["data"]["priority"] = "high"
    raw["data"]["input"]["checksum_algo"] = "sha256"
    back = Envelope.from_bytes(json.dumps(raw).encode())
    # Unknown envelope attributes are dropped; ``data`` is passed through untouched, so a
    # relay never strips what a newer consumer downstream may need ...
    assert back.model_dump(exclude={"data"}) == envelope.model_dump(exclude={"data"})
    assert "dataschema" not in back.model_dump()
    assert back.data == raw["data"]
    # ... and the typed view ignores what it does not know.
    decoded = decode(back)
    assert decoded == SAMPLES[JobSubmitted]
    assert "priority" not in decoded.model_dump()


def test_older_producer_without_optional_fields() -> None:
    """Optional fields added later take their defaults when an older producer omits them."""
    envelope = Envelope.wrap(SAMPLES[JobStateChanged], "runner")
    data = {k: envelope.data[k] for k in ("job_id", "owner", "app", "attempt", "state", "changed_at")}
    old = envelope.model_copy(update={"data": data})
    decoded = decode_as(Envelope.from_bytes(old.to_bytes()), JobStateChanged)
    assert decoded.state is JobState.TIMED_OUT
    assert decoded.retryable is False
    assert decoded.outputs == []
    assert decoded.pid is None
    assert decoded.pool == ""


def test_minimal_foreign_envelope_is_accepted() -> None:
    """An external producer sends only what the envelope requires; defaults fill the rest."""
    body = json.dumps(
        {
            "type": "org.caesar.file.deleted.v1",
            "source": "ext",
            "subject": FILE_ID,
            "routing_key": "file.deleted",
            "data": {"file_id": FILE_ID, "owner": OWNER, "size_bytes": 1},
        }
    ).encode()
    envelope = Envelope.from_bytes(body)
    assert envelope.specversion == "1.0"
    assert envelope.owner == ""
    assert len(envelope.id) == 32
    assert decode(envelope) == FileDeleted(file_id=FILE_ID, owner=OWNER, size_bytes=1)


def test_trace_context_is_preserved() -> None:
    envelope = Envelope.wrap(SAMPLES[RunJob], "scheduler", TRACE)
    back = Envelope.from_bytes(envelope.to_bytes())
    assert back.traceparent == TRACE["traceparent"]
    assert back.tracestate == TRACE["tracestate"]
    assert back.trace_carrier() == TRACE
    only_parent = Envelope.wrap(SAMPLES[RunJob], "scheduler", {"traceparent": TRACE["traceparent"]})
    assert Envelope.from_bytes(only_parent.to_bytes()).trace_carrier() == {
        "traceparent": TRACE["traceparent"]
    }


def test_timestamps_survive_as_utc_instants() -> None:
    local = datetime(2025, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    message = SAMPLES[JobCancelRequested].model_copy(update={"requested_at": local})
    decoded = decode(Envelope.from_bytes(Envelope.wrap(message, "api").to_bytes()))
    assert isinstance(decoded, JobCancelRequested)
    assert decoded.requested_at == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert decoded.requested_at.utcoffset() is not None


def test_unknown_type_is_a_key_error() -> None:
    envelope = Envelope.wrap(SAMPLES[FileDeleted], "api").model_copy(
        update={"type": "org.caesar.quota.exceeded.v1"}
    )
    with pytest.raises(KeyError):
        decode(envelope)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{}",
        b"[1, 2]",
        b'{"type": "org.caesar.file.deleted.v1"}',
        b"\xff\xfe\x00",
    ],
    ids=["empty", "text", "empty-object", "array", "missing-fields", "binary"],
)
def test_undecodable_bodies_raise_validation_error(body: bytes) -> None:
    """The bus dead-letters on exactly this exception; anything else would crash it."""
    with pytest.raises(ValidationError):
        Envelope.from_bytes(body)


def test_invalid_data_is_rejected_by_decode() -> None:
    envelope = Envelope.wrap(SAMPLES[JobStateChanged], "runner")
    bad_attempt = envelope.model_copy(update={"data": {**envelope.data, "attempt": 0}})
    with pytest.raises(ValidationError):
        decode(bad_attempt)
    bad_state = envelope.model_copy(update={"data": {**envelope.data, "state": "timed_out"}})
    with pytest.raises(ValidationError):
        decode(bad_state)


def test_messages_are_immutable() -> None:
    message = SAMPLES[JobStateChanged]
    assert isinstance(message, JobStateChanged)
    with pytest.raises(ValidationError):
        message.state = JobState.SUCCESS  # type: ignore[misc]
    envelope = Envelope.wrap(message, "runner")
    with pytest.raises(ValidationError):
        envelope.subject = "other"  # type: ignore[misc]
