"""Use cases of jobs: submit, look up, cancel, list, delete, queue position.

Every refusal is an :class:`~caesar_api.domain.errors.ApiError` with the v1 message;
nothing is written before every check has passed, and a job and its ``JobSubmitted``
event are one write, so the job exists before anyone can hear of it.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from caesar_api import metrics
from caesar_api.adapters.pagination import Page
from caesar_api.domain.apps import unavailable_reason
from caesar_api.domain.errors import ApiError, shown
from caesar_api.domain.inputs import input_problem
from caesar_api.domain.jobs import JobRequest, new_job
from caesar_api.domain.projection import position_of
from caesar_api.domain.responses import already_completed_message, stored_now
from caesar_api.domain.v2_query import job_filter, jobs_query, waiting_ahead_query
from caesar_api.domain.v2_requests import FieldError, InvalidBody, V2JobBody, option_errors
from caesar_api.service.ports import FileStore, JobStore
from caesar_common.apps import ParameterError, app_names, get_app
from caesar_common.ids import is_job_id, new_job_id
from caesar_common.layout import job_dir
from caesar_common.logging import get_logger
from caesar_common.store import Document

log = get_logger(__name__)

CANCEL_TRIES = 8
DELETE_TRIES = 8
CANCEL_REQUESTED = "Job canceled and status updated in DB"


class JobQueries(JobStore, Protocol):
    """The reads and the delete the v2 routes need beyond :class:`JobStore`."""

    async def find_page(self, query: Document, limit: int, after: Document | None) -> Page:
        """One page of the jobs ``query`` matches, newest first, after ``after``."""
        ...

    def stream_owned(self, owner: str, batch_size: int) -> AsyncIterator[Document]:
        """Every job of the owner, newest first, read from one cursor in batches."""
        ...

    async def count(self, query: Document) -> int: ...

    async def mark_deleted(self, job: Document, deleted_at: datetime) -> bool:
        """Set ``deleted_at`` if the job is still where it was read and not deleted yet."""
        ...


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


async def submit_v2(
    body: V2JobBody,
    owner: str,
    *,
    jobs: JobStore,
    files: FileStore,
    runnable_executors: Collection[str],
    roles: Collection[str] = (),
) -> Document:
    """:func:`submit` with v2 answers: the checks made first, each problem at its JSON pointer.

    Unknown app, options outside the app's published JSON Schema (every problem at
    once), an app this deployment cannot run or a file the app cannot use: 422 with
    ``errors``; a file that is not one of the caller's live files: 404, as any foreign
    resource. :func:`submit` then records the job exactly as for v1.
    """
    app = get_app(body.app)
    if app is None:
        known = ", ".join(app_names())
        raise InvalidBody([FieldError("/app", f"unknown app {shown(body.app)}; use one of {known}")])
    errors = option_errors(app, body.options)
    if errors:
        raise InvalidBody(errors)
    try:
        params = app.validate(body.options)
    except ParameterError as exc:  # the cross-field rules the schema can only describe
        raise InvalidBody([FieldError("/options", message) for message in exc.errors]) from None
    reason = unavailable_reason(app, runnable_executors)
    if reason is not None:
        raise InvalidBody([FieldError("/app", f"app {app.name} {reason}")])
    file = await files.get(owner, body.file_id)
    if file is None:
        raise ApiError(404, f"File {shown(body.file_id)} not found (upload it with POST /api/v2/files)")
    problem = input_problem(app, params, str(file.get("ext", "")), file.get("fits"))
    if problem:
        raise InvalidBody([FieldError("/file_id", problem)])
    request = JobRequest(app=app.name, file_id=body.file_id, options=body.options, tag=body.tag)
    return await submit(
        request, owner, jobs=jobs, files=files, runnable_executors=runnable_executors, roles=roles
    )


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


async def list_filtered(
    jobs: JobQueries,
    owner: str,
    *,
    states: Collection[str] | None,
    app: str | None,
    since: datetime | None,
    limit: int,
    after_id: str | None,
) -> Page:
    """One page of the caller's jobs that the filters keep, newest first.

    ``states`` are names as the API shows them (``DELETED`` included; an unknown one is a
    400), ``since`` keeps jobs submitted at or after it. The cursor is any of the caller's
    jobs, kept by the filters or not: the page goes on from where it sorts.
    """
    wanted = job_filter(states, app, since)
    after = None
    if after_id is not None:
        after = await jobs.get(owner, after_id) if is_job_id(after_id) else None
        if after is None:
            raise ApiError(400, f"Invalid after cursor {shown(after_id)}!")
    return await jobs.find_page(jobs_query(owner, wanted), limit, after)


def _remove_tree(path: Path) -> list[str]:
    """Remove a directory tree as far as possible (blocking); what could not be removed."""
    failed: list[str] = []

    def note(
        _function: object, name: str, exc_info: tuple[type[BaseException], BaseException, object]
    ) -> None:
        failed.append(f"{name}: {exc_info[1]}")

    if path.is_dir():
        shutil.rmtree(path, onerror=note)
    return failed


async def delete(
    jobs: JobQueries, owner: str, job_id: str, *, jobs_root: Path, admin: bool = False
) -> Document:
    """Remove an ended job's outputs and keep its record, shown as DELETED; return the record.

    409 while the job has not ended (cancel it first). The record is marked first, with a
    write guarded by the position read, so a job cannot be marked while an event moves
    it, and results are refused (410) before any file goes; then the job directory is
    removed. Deleting a deleted job again changes nothing.
    """
    for _ in range(DELETE_TRIES):
        job = await owned_job(jobs, owner, job_id, admin=admin)
        if job.get("deleted_at") is not None:
            return job
        if not position_of(job).is_final:
            raise ApiError(
                409, f"Job {job['_id']} has not ended (state={job['state']}); cancel it before deleting it"
            )
        now = stored_now()
        if await jobs.mark_deleted(job, now):
            job = {**job, "deleted_at": now, "updated_at": now}
            directory = job_dir(jobs_root, str(job["owner"]), str(job["_id"]))
            failed = await asyncio.to_thread(_remove_tree, directory)
            if failed:
                log.error("job outputs not fully removed", job_id=job["_id"], failed=failed[:10])
            log.info("job deleted", job_id=job["_id"], owner=owner)
            return job
    raise ApiError(503, f"Job {job_id} is changing state too fast; retry the delete")


async def queue_position(jobs: JobQueries, job: Document) -> int | None:
    """1-based place of a waiting job among every owner's jobs waiting in its pool; else None.

    Counted on the ``waiting_in_pool`` index as the jobs submitted before it, plus one:
    an approximation (fair share and priorities decide the real order; jobs submitted in
    the same millisecond share a place).
    """
    query = waiting_ahead_query(job)
    if query is None:
        return None
    return await jobs.count(query) + 1
