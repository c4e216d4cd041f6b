"""The v2 jobs: submit, list (filters, cursor), get, cancel, delete, archive.

* ``POST /api/v2/jobs`` ``{"app", "file_id", "options", "tag"?}``: 201 with the job;
* ``GET /api/v2/jobs?state=&app=&since=&limit=&after=``;
* ``GET /api/v2/jobs/{job_id}``: with its queue position while it waits;
* ``POST /api/v2/jobs/{job_id}/cancel``: 202 with the job, 409 once it has ended;
* ``DELETE /api/v2/jobs/{job_id}``: 204, outputs removed, the record shown as DELETED;
* ``GET /api/v2/jobs/{job_id}/archive``: the job directory as a streamed tar.gz.

Every decision is a use case of :mod:`caesar_api.service.jobs`; these functions read
the request and render the answer.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from caesar_api.auth import identity_of, is_admin
from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError, shown
from caesar_api.domain.responses import job_v2
from caesar_api.domain.v2_query import is_waiting, parse_since, parse_states
from caesar_api.domain.v2_requests import parse_job_body
from caesar_api.entrypoints.routes import V2, Binder
from caesar_api.entrypoints.routes.jobs import stream_job_archive
from caesar_api.entrypoints.routes.paging import page_params
from caesar_api.entrypoints.routes.v2_support import json_body, list_response, v2_route
from caesar_api.service import jobs as job_cases
from caesar_api.service.results import JobNotEnded, ended_job
from caesar_common.apps import get_app
from caesar_common.ids import is_job_id
from caesar_common.store import Document

__all__ = ["add_v2_job_routes"]


async def _rendered(deps: Dependencies, job: Document) -> dict[str, object]:
    return job_v2(job, queue_position=await job_cases.queue_position(deps.jobs, job))


async def submit(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``POST /api/v2/jobs``: 201 with the new job and its ``Location``."""
    body = parse_job_body(await json_body(request, deps))
    record = await job_cases.submit_v2(
        body,
        owner,
        jobs=deps.jobs,
        files=deps.files,
        runnable_executors=deps.settings.runnable_executors,
        roles=identity_of(request).roles,
    )
    rendered = await _rendered(deps, record)
    return web.json_response(rendered, status=201, headers={"Location": f"{V2}/jobs/{record['_id']}"})


async def list_jobs(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs``: the caller's jobs the filters keep, newest first."""
    query = request.query
    states = parse_states(query.getall("state", []))
    app = query.get("app")
    if app is not None and get_app(app) is None:
        raise ApiError(400, f"Unknown app {shown(app)}")
    since = parse_since(query.get("since"))
    limit, after_id = page_params(query, deps.settings, is_job_id)
    page = await job_cases.list_filtered(
        deps.jobs, owner, states=states, app=app, since=since, limit=limit, after_id=after_id
    )
    waiting = [job for job in page.items if is_waiting(job)]
    counted = await asyncio.gather(*(job_cases.queue_position(deps.jobs, job) for job in waiting))
    positions = {job["_id"]: place for job, place in zip(waiting, counted, strict=True)}
    return list_response(
        request, page, limit, lambda job: job_v2(job, queue_position=positions.get(job["_id"]))
    )


async def get_job(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}``: the job, with its place in the queue while it waits."""
    job = await job_cases.owned_job(deps.jobs, owner, request.match_info["job_id"], admin=is_admin(request))
    return web.json_response(await _rendered(deps, job))


async def cancel_job(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``POST /api/v2/jobs/{job_id}/cancel``: 202 with the job (cancel requested), 409 once ended."""
    job_id = request.match_info["job_id"]
    admin = is_admin(request)
    outcome = await job_cases.cancel(deps.jobs, owner, job_id, admin=admin)
    job = await job_cases.owned_job(deps.jobs, owner, job_id, admin=admin)
    if not outcome.requested:
        raise ApiError(409, f"Job {job['_id']} has already ended (state={job['state']}); nothing to cancel")
    return web.json_response(await _rendered(deps, job), status=202)


async def delete_job(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``DELETE /api/v2/jobs/{job_id}``: 204; 409 while the job has not ended."""
    await job_cases.delete(
        deps.jobs,
        owner,
        request.match_info["job_id"],
        jobs_root=deps.settings.jobs_root,
        admin=is_admin(request),
    )
    return web.Response(status=204)


async def get_archive(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/archive``: the job directory as a tar.gz, streamed as it is built.

    409 while the job runs, 410 once deleted, 404 when it ended without a directory.
    """
    try:
        job, job_dir = await ended_job(
            deps.jobs, deps.settings.jobs_root, owner, request.match_info["job_id"], admin=is_admin(request)
        )
    except JobNotEnded as exc:
        job_id, state = exc.job["_id"], exc.job["state"]
        raise ApiError(409, f"Job {job_id} has not ended yet (state={state}); no archive yet") from None
    job_id = str(job["_id"])
    if not await asyncio.to_thread(job_dir.is_dir):
        raise ApiError(404, f"Job {job_id} has no outputs (state={job['state']})")
    return await stream_job_archive(request, job_dir, job_id, level=deps.settings.output_gzip_level)


def add_v2_job_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the v2 job routes (results: :mod:`.v2`)."""
    router.add_post(f"{V2}/jobs", bind(v2_route(submit)))
    router.add_get(f"{V2}/jobs", bind(v2_route(list_jobs)), allow_head=False)
    router.add_get(f"{V2}/jobs/{{job_id}}", bind(v2_route(get_job)), allow_head=False)
    router.add_post(f"{V2}/jobs/{{job_id}}/cancel", bind(v2_route(cancel_job)))
    router.add_delete(f"{V2}/jobs/{{job_id}}", bind(v2_route(delete_job)))
    router.add_get(f"{V2}/jobs/{{job_id}}/archive", bind(v2_route(get_archive)), allow_head=False)
