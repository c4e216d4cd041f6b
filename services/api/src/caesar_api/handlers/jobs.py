"""Routes of jobs: submit, status, output, cancel, list."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

from aiohttp import web

from caesar_api.adapters.archive import stream_tar_gz
from caesar_api.adapters.jobs_repo import position_of
from caesar_api.auth import is_admin
from caesar_api.domain.errors import INVALID_REQUEST_DATA, ApiError, shown
from caesar_api.domain.inputs import input_problem
from caesar_api.domain.jobs import parse_job_request
from caesar_api.domain.responses import (
    already_completed_message,
    job_status,
    job_summary,
    not_completed_message,
    stored_now,
    submit_response,
)
from caesar_api.handlers.deps import Dependencies
from caesar_api.handlers.paging import next_link, page_params
from caesar_common.apps import ParameterError, get_app
from caesar_common.events import InputFile, JobSubmitted
from caesar_common.ids import is_job_id, new_job_id, safe_owner
from caesar_common.jobstate import JobState, is_terminal
from caesar_common.logging import get_logger

log = get_logger(__name__)

CANCEL_TRIES = 8


def job_not_found(job_id: str, owner: str) -> ApiError:
    """The v1 404 for an unknown job, a malformed id or another user's job."""
    return ApiError(404, f"Job {shown(job_id)} not found for user {owner}!")


async def _owned_job(deps: Dependencies, owner: str, job_id: str, *, admin: bool = False) -> dict[str, Any]:
    """The caller's job (anyone's for an admin); another user's job is the same 404 as none."""
    if not is_job_id(job_id):
        raise job_not_found(job_id, owner)
    job = await (deps.jobs.get_any(job_id) if admin else deps.jobs.get(owner, job_id))
    if job is None:
        raise job_not_found(job_id, owner)
    return job


async def submit_job(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``POST /job``: validate, record the job with its ``JobSubmitted`` event, answer 202.

    Checks run before anything is written: request shape, app, options against the
    app's schema, whether this deployment can run the app at all, and the input file
    (one of the caller's live files). The job record and its event are one insert, so
    the job exists before anyone can hear of it.
    """
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        # RecursionError: JSON nested thousands deep (the decoder recurses per level).
        raise ApiError(400, INVALID_REQUEST_DATA) from None
    req = parse_job_request(body)
    app = get_app(req.app)
    if app is None:
        raise ApiError(400, f"Unknown app {shown(req.app)}!")
    try:
        params = app.validate(req.options)
    except ParameterError as exc:
        raise ApiError(400, str(exc)) from None
    if not app.executors & frozenset(deps.settings.runnable_executors):
        kinds = "/".join(sorted(app.executors))
        raise ApiError(400, f"App {app.name} needs a {kinds} executor, which this deployment does not have")
    file = await deps.files.get(owner, req.file_id)
    if file is None:
        raise ApiError(400, f"File with uuid {req.file_id} not found on the system!")
    problem = input_problem(app, params, str(file.get("ext", "")), file.get("fits"))
    if problem:
        raise ApiError(400, problem)

    now = stored_now()
    job_id = new_job_id()
    resources = app.resources(params, int(file["size_bytes"]))
    event = JobSubmitted(
        job_id=job_id,
        owner=owner,
        app=app.name,
        params=dict(params.effective),
        input=InputFile(
            file_id=file["_id"],
            ext=file["ext"],
            size_bytes=file["size_bytes"],
            sha256=file["sha256"],
        ),
        tag=req.tag,
        wall_time_s=app.default_wall_time_s,
        cores=resources.cores,
        memory_mb=resources.memory_mb,
        submitted_at=now,
    )
    record: dict[str, Any] = {
        "_id": job_id,
        "owner": owner,
        "app": app.name,
        "app_version": app.version,
        "params": dict(params.given),
        "input": {"file_id": file["_id"], "ext": file["ext"]},
        "tag": req.tag,
        "submitted_at": now,
        "state": JobState.PENDING.value,
        "attempt": 0,
        "retryable": False,
        "reason": "",
        "exit_code": None,
        "elapsed_s": None,
        "cpu_s": None,
        "peak_rss_bytes": None,
        "pid": None,
        "runner_id": "",
        "pool": "",
        "outputs": [],
        "updated_at": now,
        "cancel_requested_at": None,
    }
    await deps.jobs.add(record, event)
    deps.relay.kick(deps.jobs.collection, job_id)
    log.info("job submitted", job_id=job_id, owner=owner, app=app.name)
    return web.json_response(submit_response(record, req.echo_inputs), status=202)


async def get_job_status(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /job/<job_id>/status``: the job as the projection last saw it."""
    job = await _owned_job(deps, owner, request.match_info["job_id"], admin=is_admin(request))
    return web.json_response(job_status(job))


async def get_job_output(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /job/<job_id>/output``: the job directory as a tar.gz, streamed as it is built.

    202 while the job has not ended; 404 if it ended without a directory (aborted
    before it ran, or outputs removed).
    """
    job = await _owned_job(deps, owner, request.match_info["job_id"], admin=is_admin(request))
    job_id = job["_id"]
    state = job["state"]
    if not is_terminal(JobState(state)):
        return web.json_response(
            {"job_id": job_id, "state": state, "status": not_completed_message(job_id, state)},
            status=202,
        )
    job_dir = deps.settings.jobs_root / safe_owner(job["owner"]) / job_id
    if not await asyncio.to_thread(job_dir.is_dir):
        raise ApiError(404, f"Output of job {job_id} not found (state={state})!")
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/gzip",
            "Content-Disposition": f"attachment; filename={job_id}.tar.gz",
        }
    )
    await response.prepare(request)
    async with aclosing(stream_tar_gz(job_dir, job_id, level=deps.settings.output_gzip_level)) as chunks:
        async for chunk in chunks:
            await response.write(chunk)
    await response.write_eof()
    return response


async def cancel_job(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET|POST /job/<job_id>/cancel``: ask for a cancel (``JobCancelRequested``).

    Works in every non-final state, PENDING and QUEUED included: the scheduler drops a
    job it has not dispatched, a runner kills one it runs. The state itself changes when
    they report CANCELED. The update is guarded by the state read, so a job that ends
    meanwhile gets the "already completed" answer instead of a stray request.
    """
    job_id = request.match_info["job_id"]
    for _ in range(CANCEL_TRIES):
        job = await _owned_job(deps, owner, job_id, admin=is_admin(request))
        if position_of(job).is_final:
            return web.json_response({"status": already_completed_message(job["_id"], job["state"])})
        if await deps.jobs.request_cancel(job, stored_now()):
            deps.relay.kick(deps.jobs.collection, job["_id"])
            log.info("job cancel requested", job_id=job["_id"], owner=owner, state=job["state"])
            return web.json_response({"status": "Job canceled and status updated in DB"})
    raise ApiError(503, f"Job {job_id} is changing state too fast; retry the cancel")


async def list_jobs(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /jobs``: the caller's jobs, newest first, one page (``?limit=&after=``)."""
    limit, after_id = page_params(request.query, deps.settings, is_job_id)
    after = None
    if after_id is not None:
        after = await deps.jobs.get(owner, after_id)
        if after is None:
            raise ApiError(400, f"Invalid after cursor {after_id}!")
    page = await deps.jobs.list(owner, limit, after)
    headers = {}
    if page.more:
        headers["Link"] = next_link(request.url, limit, page.items[-1]["_id"])
    return web.json_response([job_summary(j) for j in page.items], headers=headers)
