"""Use cases of jobs: submit, look up, cancel, list.

Every refusal is an :class:`~caesar_api.domain.errors.ApiError` with the v1 message;
nothing is written before every check has passed, and a job and its ``JobSubmitted``
event are one write, so the job exists before anyone can hear of it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from caesar_api import metrics
from caesar_api.adapters.pagination import Page
from caesar_api.domain.apps import unavailable_reason
from caesar_api.domain.errors import ApiError, shown
from caesar_api.domain.inputs import input_problem
from caesar_api.domain.jobs import JobRequest, new_job
from caesar_api.domain.projection import position_of
from caesar_api.domain.responses import already_completed_message, stored_now
from caesar_api.service.ports import FileStore, JobStore
from caesar_common.apps import ParameterError, get_app
from caesar_common.ids import is_job_id, new_job_id
from caesar_common.logging import get_logger
from caesar_common.store import Document

log = get_logger(__name__)

CANCEL_TRIES = 8
CANCEL_REQUESTED = "Job canceled and status updated in DB"


def job_not_found(job_id: str, owner: str) -> ApiError:
    """The v1 404 for an unknown job, a malformed id or another user's job."""
    return ApiError(404, f"Job {shown(job_id)} not found for user {owner}!")


async def submit(
    request: JobRequest,
    owner: str,
    *,
    jobs: JobStore,
    files: FileStore,
    runnable_executors: Collection[str],
    roles: Collection[str] = (),
) -> Document:
    """Check a job request and record the job with its ``JobSubmitted`` event; return the record.

    ``roles`` (the caller's realm roles) travel with the event: accounting applies the
    quota policy's per-role limits with them.

    Checks, in order: the app exists, the options fit its schema, this deployment can
    run it, the input is one of the caller's live files, and that file suits the app.
    """
    app = get_app(request.app)
    if app is None:
        raise ApiError(400, f"Unknown app {shown(request.app)}!")
    try:
        params = app.validate(request.options)
    except ParameterError as exc:
        raise ApiError(400, str(exc)) from None
    reason = unavailable_reason(app, runnable_executors)
    if reason is not None:
        raise ApiError(400, f"App {app.name} {reason}")
    file = await files.get(owner, request.file_id)
    if file is None:
        raise ApiError(400, f"File with uuid {request.file_id} not found on the system!")
    problem = input_problem(app, params, str(file.get("ext", "")), file.get("fits"))
    if problem:
        raise ApiError(400, problem)
    record, event = new_job(
        job_id=new_job_id(),
        owner=owner,
        app=app,
        params=params,
        file=file,
        tag=request.tag,
        now=stored_now(),
        roles=roles,
    )
    await jobs.add(record, event)
    metrics.JOBS_SUBMITTED.labels(app.name).inc()
    log.info("job submitted", job_id=record["_id"], owner=owner, app=app.name)
    return record


async def owned_job(jobs: JobStore, owner: str, job_id: str, *, admin: bool = False) -> Document:
    """The caller's job (anyone's for an admin); another user's job is the same 404 as none."""
    if not is_job_id(job_id):
        raise job_not_found(job_id, owner)
    job = await (jobs.get_any(job_id) if admin else jobs.get(owner, job_id))
    if job is None:
        raise job_not_found(job_id, owner)
    return job


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did: ``requested`` (a new request) or not (the job had ended)."""

    requested: bool
    message: str


async def cancel(jobs: JobStore, owner: str, job_id: str, *, admin: bool = False) -> CancelOutcome:
    """Ask for a cancel (``JobCancelRequested``) of a job that has not ended.

    Works in every non-final state, PENDING and QUEUED included: the scheduler drops a
    job it has not dispatched, a runner kills one it runs; the state changes when they
    report CANCELED. The write is guarded by the state read, so a job that ends
    meanwhile gets the "already completed" answer instead of a stray request.
    """
    for _ in range(CANCEL_TRIES):
        job = await owned_job(jobs, owner, job_id, admin=admin)
        if position_of(job).is_final:
            return CancelOutcome(False, already_completed_message(job["_id"], job["state"]))
        if await jobs.request_cancel(job, stored_now()):
            log.info("job cancel requested", job_id=job["_id"], owner=owner, state=job["state"])
            return CancelOutcome(True, CANCEL_REQUESTED)
    raise ApiError(503, f"Job {job_id} is changing state too fast; retry the cancel")


async def list_page(jobs: JobStore, owner: str, limit: int, after_id: str | None) -> Page:
    """One page of the caller's jobs, newest first, after the job named by the cursor."""
    after = None
    if after_id is not None:
        after = await jobs.get(owner, after_id)
        if after is None:
            raise ApiError(400, f"Invalid after cursor {after_id}!")
    return await jobs.list(owner, limit, after)
