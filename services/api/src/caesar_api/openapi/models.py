"""The shapes of request and response bodies, as pydantic models.

These models exist for the OpenAPI document only: the routes build their bodies from
:mod:`caesar_api.domain.responses`, and a schemathesis run (tests/fuzz) checks every
answer against the schemas generated from here, so a model that drifts from what the
server sends fails a test. Id patterns come from :mod:`caesar_common.ids`; values that
depend on the deployment (allowed formats, page sizes) are filled in by the paths.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from caesar_api.domain.jobs import TAG_MAX
from caesar_common.ids import FILE_ID_RE, JOB_ID_RE
from caesar_common.jobstate import JobState
from caesar_common.usage_query import GROUP_BY

FILE_ID_PATTERN = FILE_ID_RE.pattern
JOB_ID_PATTERN = JOB_ID_RE.pattern
# A file uuid, or a path whose last component is <uuid>.<ext> (domain.jobs.file_id_from_reference).
FILE_REFERENCE_PATTERN = (
    r"^(?:[0-9a-f]{32}|[\s\S]*[/\\][0-9a-f]{32}\.[A-Za-z0-9]{1,16}|[0-9a-f]{32}\.[A-Za-z0-9]{1,16})$"
)

FileId = Field(pattern=FILE_ID_PATTERN, description="File uuid (32 lowercase hex characters).")


class Status(BaseModel):
    """A message; every v1 error has this shape."""

    status: str


class LimitStatus(BaseModel):
    """A v1 error of a limit: the message in ``status``, the figures that apply beside it."""

    status: str
    used_bytes: int | None = Field(None, description="Bytes the caller's live files take.")
    limit_bytes: int | None = Field(
        None, description="The byte limit: the storage quota, or the decompressed size allowed."
    )
    upload_bytes: int | None = Field(None, description="The upload's size, when known in full.")
    used_files: int | None = Field(None, description="The caller's live files.")
    limit_files: int | None = Field(None, description="The file quota.")
    decompressed_bytes: int | None = Field(
        None, description="What a compressed image's header declares once decompressed."
    )
    uploads_in_progress: int | None = Field(None, description="The caller's uploads streaming now.")
    limit_uploads: int | None = Field(None, description="Uploads one caller may stream at once.")
    bytes_per_s: int | None = Field(None, description="The body's average rate so far.")
    min_bytes_per_s: int | None = Field(None, description="The slowest rate accepted.")
    limit_connections: int | None = Field(None, description="Connections the api serves at once.")


class Problem(BaseModel):
    """RFC 9457 problem details (v2 errors)."""

    type: str
    title: str
    status: int
    detail: str


class UploadForm(BaseModel):
    """The multipart form of an upload."""

    file: bytes = Field(
        json_schema_extra={"format": "binary"}, description="The file; its name gives the format."
    )
    tag: str = Field("", max_length=TAG_MAX, description="Free label.")


class UploadResult(BaseModel):
    """A stored upload."""

    date: str = Field(description="Upload time, ISO 8601 in UTC without an offset.")
    filename_orig: str
    format: str = Field(description="The file's extension (one of the allowed formats).")
    size: float = Field(description="Size in MiB.")
    status: str
    tag: str
    uuid: str = FileId


class FileRecord(BaseModel):
    """One of the caller's files."""

    fileid: str = FileId
    filename_orig: str
    fileext: str
    filesize: float = Field(description="Size in MiB.")
    filedate: str = Field(description="Upload time, ISO 8601 in UTC without an offset.")
    tag: str


class FileList(BaseModel):
    """One page of the caller's files, newest first."""

    file_ids: list[str]
    files: list[FileRecord]


class DownloadForm(BaseModel):
    """``POST /download``: the file to redirect to."""

    uuid: str = Field(min_length=1)


class AppList(BaseModel):
    """Every app the service knows, runnable here or not."""

    apps: list[str]


class AppOption(BaseModel):
    """One option of an app, as the v1 describe lists it."""

    description: str
    mandatory: bool
    type: Literal["int", "float", "str", "none"]
    default: Any = None
    min: float | None = None
    max: float | None = None
    enum: bool | None = None
    allowed_values: list[Any] | None = None
    category: str | None = None
    subcategory: str | None = None
    advanced: Literal[0, 1] | None = None


class AppDescription(RootModel[dict[str, AppOption]]):
    """An app's options keyed by option name."""


class JobRequest(BaseModel):
    """``POST /job``: an app, its options and the input file.

    The input file is ``data_inputs`` or ``job_inputs.inputfile`` (at least one; both
    must name the same file): a file uuid, or a path named ``<uuid>.<ext>`` of which only
    the name is used. ``envfile`` is ignored and ``run`` accepted and ignored.
    """

    model_config = ConfigDict(extra="allow")

    app: str = Field(min_length=1, examples=["sfind"])
    job_inputs: dict[str, Any] = Field(
        description="App options (see /app/{name}/describe or /api/v2/apps).", examples=[{"seedthr": 5}]
    )
    data_inputs: str | None = Field(None, pattern=FILE_REFERENCE_PATTERN)
    tag: str | None = Field(None, max_length=TAG_MAX)


class JobAccepted(BaseModel):
    """A job recorded as PENDING."""

    app: str
    job_id: str = Field(pattern=JOB_ID_PATTERN)
    job_inputs: dict[str, Any]
    data_inputs: str = FileId
    state: JobState
    status: str
    submit_date: str
    tag: str


class JobStatus(BaseModel):
    """A job as the api's read model last saw it."""

    elapsed_time: str = Field(description="Seconds, '' while unknown.")
    exit_status: int | None
    exit_code: int | None
    job_id: str = Field(pattern=JOB_ID_PATTERN)
    pid: str = Field(description="'' while unknown.")
    pool: str | None = Field(None, description="Executor pool (local, slurm) once chosen.")
    state: JobState
    status: str
    tag: str
    waiting_reason: str | None = Field(
        None, description="Why a QUEUED job cannot start yet (its pool has no live runner)."
    )
    hold_reason: str | None = Field(
        None, description="Why a HELD job waits: its owner's exhausted quotas, with the figures."
    )


class JobSummary(JobStatus):
    """One entry of the caller's job list."""

    app: str
    data_inputs: str = FileId
    job_inputs: dict[str, Any]
    submit_date: str


class JobList(RootModel[list[JobSummary]]):
    """One page of the caller's jobs, newest first (by submission time)."""


class JobNotCompleted(BaseModel):
    """A job whose outputs are not there yet."""

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    state: JobState
    status: str


class Catalog(BaseModel):
    """The harmonised catalogue.

    The same core columns for every finder (source_id, island_id, component_id, ra, dec,
    err_ra, err_dec, peak_flux, err_peak_flux, int_flux, err_int_flux, maj, min, pa,
    local_rms, snr, flags), then the finder's extras.
    """

    finder: str
    catalog: Literal["sources", "components"]
    n_sources: int
    columns: list[dict[str, Any]]
    sources: list[dict[str, Any]]


class PreviewImage(BaseModel):
    """The preview PNG in base64."""

    image: str
    status: str


class AppEntry(BaseModel):
    """An app with its JSON Schema, version and availability."""

    name: str
    version: str
    description: str
    executors: list[str]
    available: bool
    default_wall_time_s: int
    container_image: str | None
    schema_: dict[str, Any] = Field(alias="schema")
    unavailable_reason: str | None = None


class AppCatalog(BaseModel):
    """Every app."""

    apps: list[AppEntry]


class JobFile(BaseModel):
    """One output of a job; size and checksum are null where the manifest lacks them."""

    name: str
    size_bytes: int | None
    sha256: str | None


class JobFiles(BaseModel):
    """The job's output files (from its manifest), the manifest last."""

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    files: list[JobFile]


class DeadLetter(BaseModel):
    """One dead-lettered message."""

    dead_letter_queue: str
    origin_queue: str
    reason: str
    deaths: int
    message_id: str
    type: str
    routing_key: str
    body: str


class DeadLetters(BaseModel):
    """Messages waiting in the dead-letter queues (they stay there)."""

    dead_letters: list[DeadLetter]


class Replayed(BaseModel):
    """How many messages went back to their queue."""

    queue: str
    replayed: int


class UsageV1(BaseModel):
    """The caller's usage (v1 ``/accounting``): the old service's fields, then a few more.

    Jobs count once each, with the outcome the job list shows (a retried job: its last
    attempt's); runtimes are seconds of wall time of that attempt.
    """

    datasize: int = Field(description="Bytes of the stored (not deleted) uploads.")
    jobsize: int = Field(description="Bytes of the outputs of the ended jobs.")
    totsize: int = Field(description="datasize + jobsize.")
    njobs: int = Field(description="Jobs submitted.")
    njobs_completed: int = Field(description="Jobs ended with SUCCESS.")
    njobs_failed: int = Field(description="Jobs ended with FAILURE.")
    njobs_aborted: int = Field(description="Jobs ended with ABORTED.")
    njobs_pending: int = Field(description="Jobs accepted, queued or held: not started yet.")
    njobs_running: int = Field(description="Jobs started or running.")
    njobs_timed_out: int = Field(description="Jobs ended with TIMED-OUT.")
    njobs_canceled: int = Field(description="Jobs ended with CANCELED.")
    nfiles: int = Field(description="Stored (not deleted) uploads.")
    job_runtime: float = Field(description="Seconds of wall time of the ended jobs.")
    job_completed_runtime: float = Field(description="Seconds of wall time of the completed jobs.")
    avg_completed_job_runtime: float = Field(
        description="job_completed_runtime / njobs_completed (0 if none)."
    )
    timestamp: str = Field(description="When the figures were computed, ISO 8601 in UTC without an offset.")


class AppStats(UsageV1):
    """Everyone's usage (v1 ``/appstats``, admins only): the same fields over all users."""

    nusers: int = Field(description="Users with a job or an upload.")


class UsageFigures(BaseModel):
    """Usage of a set of jobs and files (a group of a report, or all of it).

    A job counts once, with the outcome its status shows (its last attempt's); its
    ``wall_s``/``cpu_s`` are that attempt's, what its other attempts (lost, superseded)
    used is in ``*_lost_attempts``. Files count while stored.
    """

    njobs: int
    njobs_completed: int = Field(description="SUCCESS.")
    njobs_failed: int = Field(description="FAILURE.")
    njobs_timed_out: int = Field(description="TIMED-OUT.")
    njobs_canceled: int = Field(description="CANCELED.")
    njobs_aborted: int = Field(description="ABORTED.")
    njobs_active: int = Field(description="Not ended: njobs_pending + njobs_running.")
    njobs_pending: int = Field(description="Accepted, queued or held.")
    njobs_running: int = Field(description="Started or running.")
    wall_s: float = Field(description="Seconds of wall time of the ended jobs.")
    wall_s_completed: float = Field(description="Seconds of wall time of the completed jobs.")
    cpu_s: float = Field(description="CPU seconds of the ended jobs.")
    peak_rss_bytes: int = Field(description="The largest peak memory of a job.")
    output_bytes: int = Field(description="Bytes of the jobs' outputs.")
    nfiles: int = Field(description="Uploads still stored.")
    bytes_stored: int = Field(description="Bytes of those uploads.")
    attempts: int = Field(description="Attempts that ended, counted or not.")
    lost_attempts: int = Field(description="Attempts that ended but are not the counted outcome.")
    cpu_s_lost_attempts: float
    wall_s_lost_attempts: float
    avg_completed_wall_s: float = Field(description="wall_s_completed / njobs_completed (0 if none).")


class UsageRow(UsageFigures):
    """One group of a report: its key under the grouping's name, then its figures."""

    user: str | None = Field(None, description="The user's id (group_by=user).")
    app: str | None = Field(None, description="The app (group_by=app); uploads belong to no app.")
    day: str | None = Field(None, description="The UTC day of submission or upload (group_by=day).")


class UsageReport(BaseModel):
    """Usage of the jobs submitted and files uploaded from ``from`` to ``to`` (inclusive)."""

    group_by: str = Field(json_schema_extra={"enum": list(GROUP_BY)})
    from_: str | None = Field(alias="from", description="First day; null: from the beginning.")
    to: str | None = Field(description="Last day; null: up to now.")
    user: str | None = Field(description="The one user the report covers; null: everyone.")
    rows: list[UsageRow] = Field(description="One per group, in the order of the group keys.")
    totals: UsageFigures
    timestamp: str = Field(description="When the report was computed (ISO 8601).")


class Health(BaseModel):
    """The process is up."""

    status: str


class Readiness(BaseModel):
    """Whether broker and database are reachable."""

    status: Literal["ready", "not ready"]
    broker: bool
    database: bool


COMPONENT_MODELS: tuple[type[BaseModel], ...] = (
    Status,
    LimitStatus,
    Problem,
    UploadForm,
    UploadResult,
    FileRecord,
    FileList,
    DownloadForm,
    AppList,
    AppOption,
    AppDescription,
    JobRequest,
    JobAccepted,
    JobStatus,
    JobSummary,
    JobList,
    JobNotCompleted,
    Catalog,
    PreviewImage,
    AppEntry,
    AppCatalog,
    JobFile,
    JobFiles,
    DeadLetter,
    DeadLetters,
    Replayed,
    UsageV1,
    AppStats,
    UsageFigures,
    UsageRow,
    UsageReport,
    Health,
    Readiness,
)
"""Every model that becomes a component schema (``#/components/schemas/<name>``)."""
