"""Messages exchanged over RabbitMQ and the envelope that carries them.

Attribute names follow CloudEvents 1.0 (``specversion``, ``id``, ``source``, ``type``,
``subject``, ``time``, ``data``) with two extensions: ``owner`` (the user the subject
belongs to, so subscribers can filter without parsing data) and the W3C trace context
(``traceparent``/``tracestate``) captured when the event was *created*, so a trace runs
unbroken through the outbox. ``type`` carries the schema version
(``org.caesar.job.submitted.v1``); consumers ignore fields they do not know, so adding an
optional field is not a new version, removing or retyping one is.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from caesar_common.jobstate import JobPosition, JobState

EVENTS_EXCHANGE = "caesar.events"
DEAD_LETTER_EXCHANGE = "caesar.dlx"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every event and command payload."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type_name: ClassVar[str]
    version: ClassVar[int] = 1

    @classmethod
    def event_type(cls) -> str:
        return f"org.caesar.{cls.type_name}.v{cls.version}"

    def routing_key(self) -> str:
        return self.type_name

    def subject(self) -> str:
        raise NotImplementedError

    def owner_of(self) -> str:
        return str(getattr(self, "owner", ""))


class InputFile(BaseModel):
    """Where a job's input lives: built from ids, never from client paths."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    file_id: str
    ext: str
    size_bytes: int = 0
    sha256: str = ""


class FileUploaded(Message):
    type_name: ClassVar[str] = "file.uploaded"

    file_id: str
    owner: str
    filename: str
    ext: str
    size_bytes: int
    sha256: str
    tag: str = ""
    uploaded_at: datetime

    def subject(self) -> str:
        return self.file_id


class FileDeleted(Message):
    type_name: ClassVar[str] = "file.deleted"

    file_id: str
    owner: str
    size_bytes: int

    def subject(self) -> str:
        return self.file_id


class JobSubmitted(Message):
    type_name: ClassVar[str] = "job.submitted"

    job_id: str
    owner: str
    app: str
    params: dict[str, Any]
    input: InputFile
    tag: str = ""
    wall_time_s: int
    cores: int = 1
    memory_mb: int = 512
    submitted_at: datetime
    roles: tuple[str, ...] = ()
    """The submitter's realm roles, for accounting to apply per-role quotas."""

    def subject(self) -> str:
        return self.job_id


class QuotaChanged(Message):
    """A user went over quota, or back under it (accounting's verdict, per user).

    ``revision`` grows with each verdict of that user, so a consumer keeps the newest one
    whatever order the events arrive in.
    """

    type_name: ClassVar[str] = "quota.changed"

    owner: str
    over: bool
    reason: str = ""
    usage: dict[str, float] = {}
    limits: dict[str, float | None] = {}
    revision: int = Field(ge=1)
    evaluated_at: datetime

    def subject(self) -> str:
        return self.owner


class JobCancelRequested(Message):
    type_name: ClassVar[str] = "job.cancel_requested"

    job_id: str
    owner: str
    requested_at: datetime

    def subject(self) -> str:
        return self.job_id


class OutputFile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    size_bytes: int
    sha256: str = ""


RUNNER_SOURCE: Final = "runner"
"""The ``source`` of what runners emit: only a runner's final report can withdraw a retry."""


class JobStateChanged(Message):
    type_name: ClassVar[str] = "job.state"

    job_id: str
    owner: str
    app: str
    attempt: int = Field(ge=1)
    state: JobState
    reason: str = ""
    retryable: bool = False
    changed_at: datetime
    pool: str = ""
    runner_id: str = ""
    pid: int | None = None
    exit_code: int | None = None
    elapsed_s: float | None = None
    cpu_s: float | None = None
    peak_rss_bytes: int | None = None
    outputs: list[OutputFile] = Field(default_factory=list)
    result_attempt: int | None = Field(default=None, ge=1)
    """Set when this outcome is an earlier attempt's: that attempt finished after all
    before its retry started, so the retry was withdrawn and the job closed with the
    earlier outcome. Its outputs live in that attempt's directory."""

    def routing_key(self) -> str:
        return f"job.state.{self.state.routing_suffix}"

    def subject(self) -> str:
        return self.job_id

    @property
    def position(self) -> JobPosition:
        return JobPosition(self.attempt, self.state, self.retryable)


class RunJob(Message):
    """Command to a runner pool: run one attempt of a job."""

    type_name: ClassVar[str] = "run_job"

    job_id: str
    owner: str
    app: str
    attempt: int = Field(ge=1)
    params: dict[str, Any]
    input: InputFile
    wall_time_s: int
    cores: int = 1
    memory_mb: int = 512
    pool: str

    def routing_key(self) -> str:
        return f"runner.{self.pool}"

    def subject(self) -> str:
        return self.job_id


class RunningJobRef(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: str
    attempt: int


class RunnerHeartbeat(Message):
    type_name: ClassVar[str] = "runner.heartbeat"

    runner_id: str
    pool: str
    slots_total: int
    slots_free: int
    running: list[RunningJobRef] = Field(default_factory=list)
    sent_at: datetime
    accepting: bool = True

    def subject(self) -> str:
        return self.runner_id

    def owner_of(self) -> str:
        return ""


class PoolStatus(Message):
    """Whether a runner pool can run anything, as the scheduler sees it (a snapshot).

    Published by the scheduler when it changes and again periodically (not through an
    outbox: the next snapshot replaces a lost one). ``runnerless_since`` is set while no
    runner of the pool has been heard from; jobs waiting for it that long past
    ``max_wait_s`` (0: never) are ABORTED.
    """

    type_name: ClassVar[str] = "pool.status"

    pool: str
    live_runners: int
    slots_total: int
    runnerless_since: datetime | None = None
    max_wait_s: float = 0.0
    reason: str = ""
    """Why the pool's jobs wait, for people (empty while a runner serves the pool)."""
    sent_at: datetime

    def subject(self) -> str:
        return self.pool

    def owner_of(self) -> str:
        return ""


class Envelope(BaseModel):
    """CloudEvents-style envelope; ``data`` holds a :class:`Message` as a dict."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: str = "1.0"
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    source: str
    subject: str
    time: datetime = Field(default_factory=utcnow)
    owner: str = ""
    datacontenttype: str = "application/json"
    routing_key: str
    data: dict[str, Any]
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def wrap(
        cls,
        message: Message,
        source: str,
        trace: dict[str, str] | None = None,
    ) -> Envelope:
        trace = trace or {}
        return cls(
            type=message.event_type(),
            source=source,
            subject=message.subject(),
            owner=message.owner_of(),
            routing_key=message.routing_key(),
            data=message.model_dump(mode="json"),
            traceparent=trace.get("traceparent"),
            tracestate=trace.get("tracestate"),
        )

    def trace_carrier(self) -> dict[str, str]:
        carrier = {}
        if self.traceparent:
            carrier["traceparent"] = self.traceparent
        if self.tracestate:
            carrier["tracestate"] = self.tracestate
        return carrier

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> Envelope:
        return cls.model_validate_json(body)


M = TypeVar("M", bound=Message)

MESSAGE_TYPES: dict[str, type[Message]] = {
    m.event_type(): m
    for m in (
        FileUploaded,
        FileDeleted,
        JobSubmitted,
        JobCancelRequested,
        JobStateChanged,
        RunJob,
        RunnerHeartbeat,
        PoolStatus,
        QuotaChanged,
    )
}


def decode(envelope: Envelope) -> Message:
    """The typed message inside an envelope; ``KeyError`` for an unknown type."""
    return MESSAGE_TYPES[envelope.type].model_validate(envelope.data)


def decode_as(envelope: Envelope, kind: type[M]) -> M:
    return kind.model_validate(envelope.data)
