"""Routes of jobs: submit, status, output, cancel, list."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from pathlib import Path

from aiohttp import web

from caesar_api.adapters.archive import stream_tar_gz
from caesar_api.auth import identity_of, is_admin
from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import INVALID_REQUEST_DATA, ApiError
from caesar_api.domain.jobs import parse_job_request
from caesar_api.domain.responses import job_status, job_summary, not_completed_message, submit_response
from caesar_api.entrypoints.limits import read_within
from caesar_api.entrypoints.routes import V1, Binder
from caesar_api.entrypoints.routes.paging import next_link, page_params
from caesar_api.entrypoints.routes.streamed_lists import STREAM_BATCH, stream_array
from caesar_api.service import jobs as job_cases
from caesar_api.service.results import JobNotEnded, ended_job
from caesar_common import layout
from caesar_common.ids import is_job_id


def not_ended(exc: JobNotEnded) -> web.Response:
    """The v1 answer while a job runs: 202 with its state (not an error)."""
    job_id, state = exc.job["_id"], exc.job["state"]
    return web.json_response(
        {"job_id": job_id, "state": state, "status": not_completed_message(job_id, state)}, status=202
    )


async def stream_job_archive(
    request: web.Request, job_dir: Path, job_id: str, *, level: int
) -> web.StreamResponse:
    """Answer with ``job_dir`` as ``<job_id>.tar.gz``, written while it is built.

    The v1 ``/output`` and the v2 ``/archive`` send the same bytes and headers; only their
    checks before it (which job, which error) differ, so those stay in each route. The
    names come from :mod:`caesar_common.layout`, where every archive's are decided.
    """
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/gzip",
            "Content-Disposition": f"attachment; filename={layout.archive_filename(job_id)}",
        }
    )
    await response.prepare(request)
    archive = stream_tar_gz(job_dir, layout.archive_root(job_id), level=level)
    async with aclosing(archive) as chunks:
        async for chunk in chunks:
            await response.write(chunk)
    await response.write_eof()
    return response


async def submit_job(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``POST /job``: parse the request, submit the job, answer 202 with its record."""
    try:
        body = await read_within(deps.settings.http_body_timeout_s, request.json())
    except (ValueError, RecursionError):
        # RecursionError: JSON nested thousands deep (the decoder recurses per level).
        raise ApiError(400, INVALID_REQUEST_DATA) from None
    job_request = parse_job_request(body)
    record = await job_cases.submit(
        job_request,
        owner,
        jobs=deps.jobs,
        files=deps.files,
        runnable_executors=deps.settings.runnable_executors,
        roles=identity_of(request).roles,
    )
    return web.json_response(submit_response(record, job_request.echo_inputs), status=202)


async def get_job_status(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /job/<job_id>/status``: the job as the projection last saw it."""
    job = await job_cases.owned_job(deps.jobs, owner, request.match_info["job_id"], admin=is_admin(request))
    waiting = await deps.pools.waiting_reason(job.get("pool", "")) if job["state"] == "QUEUED" else ""
    return web.json_response(job_status(job, waiting=waiting))


async def get_job_output(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /job/<job_id>/output``: the job directory as a tar.gz, streamed as it is built.

    202 while the job has not ended; 404 if it ended without a directory (aborted
    before it ran, or outputs removed).
    """
    try:
        job, job_dir = await ended_job(
            deps.jobs, deps.settings.jobs_root, owner, request.match_info["job_id"], admin=is_admin(request)
        )
    except JobNotEnded as exc:
        return not_ended(exc)
    job_id = job["_id"]
    if not await asyncio.to_thread(job_dir.is_dir):
        raise ApiError(404, f"Output of job {job_id} not found (state={job['state']})!")
    return await stream_job_archive(request, job_dir, job_id, level=deps.settings.output_gzip_level)


async def cancel_job(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET|POST /job/<job_id>/cancel``: ask for a cancel; 200 whether new or already ended."""
    outcome = await job_cases.cancel(deps.jobs, owner, request.match_info["job_id"], admin=is_admin(request))
    return web.json_response({"status": outcome.message})


async def list_jobs(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /jobs``: the caller's jobs, newest first.

    Without ``?limit=`` and ``?after=`` every job, streamed (old clients never page);
    with either, one page and a ``Link`` to the next.
    """
    if "limit" not in request.query and "after" not in request.query:
        return await stream_array(request, deps.jobs.stream_owned(owner, STREAM_BATCH), job_summary)
    limit, after_id = page_params(request.query, deps.settings, is_job_id)
    page = await job_cases.list_page(deps.jobs, owner, limit, after_id)
    headers = {}
    if page.more:
        headers["Link"] = next_link(request.url, limit, page.items[-1]["_id"])
    return web.json_response([job_summary(j) for j in page.items], headers=headers)


def add_job_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the v1 job routes."""
    router.add_post(f"{V1}/job", bind(submit_job))
    router.add_get(f"{V1}/job/{{job_id}}/status", bind(get_job_status), allow_head=False)
    router.add_get(f"{V1}/job/{{job_id}}/output", bind(get_job_output), allow_head=False)
    router.add_get(f"{V1}/job/{{job_id}}/cancel", bind(cancel_job), allow_head=False)
    router.add_post(f"{V1}/job/{{job_id}}/cancel", bind(cancel_job))
    router.add_get(f"{V1}/jobs", bind(list_jobs), allow_head=False)
