"""The shapes of the v2 jobs and files (OpenAPI only; the bodies come from ``domain.responses``).

Kept apart from :mod:`.models` (v1 and the other v2 routes) so that each group of
routes owns its shapes; :mod:`.models` lists these among the component schemas.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from caesar_api.domain.jobs import TAG_MAX
from caesar_api.domain.v2_query import STATE_NAMES
from caesar_common.apps import app_names
from caesar_common.ids import FILE_ID_RE, JOB_ID_RE

TIME = "ISO 8601 with its offset (UTC), to the millisecond."


class FileLinks(BaseModel):
    """Where a file's client goes next."""

    self_: str = Field(alias="self")
    content: str


class FileV2(BaseModel):
    """An uploaded file (v2)."""

    file_id: str = Field(pattern=FILE_ID_RE.pattern)
    filename: str = Field(description="The name it was uploaded with (its last path component).")
    format: str = Field(description="The extension (one of the allowed formats).")
    size_bytes: int = Field(ge=0)
    tag: str
    uploaded_at: str | None = Field(description=TIME)
    fits: dict[str, Any] | None = Field(description="FITS header facts (shape, WCS, beam...) or null.")
    links: FileLinks


class FileV2List(BaseModel):
    """One page of the caller's live files, newest first."""

    items: list[FileV2]
    next: str | None = Field(description="The next page's URL (also in the Link header), or null.")


class JobLinks(BaseModel):
    """Where a job's client goes next."""

    self_: str = Field(alias="self")
    events: str
    files: str
    catalog: str
    preview: str
    archive: str


class JobV2(BaseModel):
    """A job (v2): state, attempt, pool, timings, queue position or hold reason, links."""

    job_id: str = Field(pattern=JOB_ID_RE.pattern)
    app: str
    state: str = Field(
        json_schema_extra={"enum": list(STATE_NAMES)},
        description="DELETED once its outputs were removed (DELETE); the record stays.",
    )
    attempt: int = Field(ge=0, description="0 until the scheduler admits it.")
    pool: str | None = Field(description="Executor pool (local, slurm) once chosen.")
    file_id: str | None = Field(description="The input file.")
    options: dict[str, Any] = Field(description="The options as submitted.")
    tag: str
    reason: str = Field(description="Why the job is in its state (a failure, an abort, a hold).")
    hold_reason: str | None = Field(
        description="While HELD: the owner's exhausted quotas with used and limit figures."
    )
    queue_position: int | None = Field(
        ge=1,
        description=(
            "While PENDING or QUEUED: 1 + the jobs of every user waiting in the same pool that were "
            "submitted before it. An estimate: fair share and priorities decide the real order."
        ),
    )
    exit_code: int | None
    elapsed_s: float | None
    submitted_at: str | None = Field(description=TIME)
    started_at: str | None = Field(description="When the current attempt started. " + TIME)
    ended_at: str | None = Field(description="When the job reached its final state. " + TIME)
    updated_at: str | None = Field(description=TIME)
    deleted_at: str | None = Field(description="Null unless deleted. " + TIME)
    links: JobLinks


class JobV2List(BaseModel):
    """One page of the caller's jobs the filters keep, newest first."""

    items: list[JobV2]
    next: str | None = Field(description="The next page's URL (also in the Link header), or null.")


class JobRequestV2(BaseModel):
    """``POST /api/v2/jobs``: the options are checked against the app's JSON Schema."""

    model_config = ConfigDict(extra="forbid")

    app: str = Field(json_schema_extra={"enum": list(app_names())})
    file_id: str = Field(pattern=FILE_ID_RE.pattern, description="An uploaded file (POST /api/v2/files).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The app's options (GET /api/v2/apps/{name}: schema)."
    )
    tag: str = Field("", max_length=TAG_MAX)


class FieldProblem(BaseModel):
    """One problem of a request body."""

    path: str = Field(description="JSON pointer of the value (empty: the whole body).")
    message: str


class ValidationProblem(BaseModel):
    """RFC 9457 problem details of a body that does not fit its schema (422)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem]


V2_MODELS: tuple[type[BaseModel], ...] = (
    FileLinks,
    FileV2,
    FileV2List,
    JobLinks,
    JobV2,
    JobV2List,
    JobRequestV2,
    FieldProblem,
    ValidationProblem,
)
"""The component schemas of this module."""
V2_REQUEST_MODELS: frozenset[type[BaseModel]] = frozenset({JobRequestV2})
