"""Use cases of the UWS job lists, built on the api's job use cases.

Submission, lookup, cancel, list and delete are :mod:`caesar_api.service.jobs`'s; this
module adds only what UWS has and the api had not: drafts (jobs created without
``PHASE=RUN``, see :mod:`caesar_api.uws.drafts`), the UWS id of a job created as a draft,
and the merge of drafts and jobs in one job list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Final

from vo_models.uws.types import ExecutionPhase

from caesar_api.adapters.job_files import load_manifest
from caesar_api.domain.errors import ApiError
from caesar_api.domain.jobs import JobRequest
from caesar_api.domain.responses import stored_now
from caesar_api.service import jobs as job_cases
from caesar_api.service.jobs import JobQueries
from caesar_api.service.ports import FileStore
from caesar_api.service.results import job_dir
from caesar_api.uws.drafts import DraftStore
from caesar_api.uws.params import JobParameters, ListQuery
from caesar_api.uws.phases import FINAL_PHASES, phase_filter, phase_of_job
from caesar_api.uws.views import ResultLink, UwsJobView, draft_view, job_view, result_links
from caesar_api.uws.wait import ChangeSignal, wait_for_change
from caesar_common.apps import App, ParameterError
from caesar_common.ids import is_job_id, new_job_id
from caesar_common.logging import get_logger
from caesar_common.store import Document

log = get_logger(__name__)

STALE_CLAIM = timedelta(minutes=2)
"""A submission claim older than this was left by a process that died mid-way."""


@dataclass(frozen=True)
class UwsContext:
    """What the UWS use cases need, chosen once per request by the routes."""

    jobs: JobQueries
    files: FileStore
    drafts: DraftStore
    runnable_executors: Collection[str]
    jobs_root: Path
    max_list: int
    max_wait_s: float
    poll_s: float
    roles: Collection[str] = ()
    signal: ChangeSignal | None = field(default=None, compare=False)


def _not_found(uws_id: str, app: App) -> ApiError:
    return ApiError(
        404, f"No job {uws_id if is_job_id(uws_id) else '(malformed id)'} in the {app.name} job list"
    )


REFUSED: Final = 403
"""A well-formed job the service will not run (UWS 1.1 section 2.2.3.1: "403 Forbidden")."""


def _validated(app: App, params: JobParameters) -> None:
    try:
        app.validate(params.options)
    except ParameterError as exc:
        raise ApiError(REFUSED, str(exc)) from None


async def _require_file(ctx: UwsContext, owner: str, file_id: str) -> None:
    if await ctx.files.get(owner, file_id) is None:
        raise ApiError(REFUSED, f"File with uuid {file_id} not found on the system!")


async def _submit(ctx: UwsContext, request: JobRequest, owner: str) -> Document:
    """The api's submission; its 400s (options, input file, app) are UWS refusals (403)."""
    try:
        return await job_cases.submit(
            request,
            owner,
            jobs=ctx.jobs,
            files=ctx.files,
            runnable_executors=ctx.runnable_executors,
            roles=ctx.roles,
        )
    except ApiError as exc:
        if exc.http_status == 400:
            raise ApiError(REFUSED, exc.message, headers=exc.headers) from None
        raise


async def create(ctx: UwsContext, app: App, owner: str, params: JobParameters) -> str:
    """A new job of ``app``; its UWS id.

    With ``PHASE=RUN`` the job is submitted at once (its id is the job id); without, a
    draft is kept after the checks a submission would fail on first (options, input file),
    and nothing runs until ``PHASE=RUN``.
    """
    if params.file_id is None:
        raise ApiError(400, "No input file given: set inputfile to the id of an uploaded file")
    if params.run:
        request = JobRequest(
            app=app.name, file_id=params.file_id, options=params.options, tag=params.run_id or ""
        )
        record = await _submit(ctx, request, owner)
        return str(record["_id"])
    _validated(app, params)
    await _require_file(ctx, owner, params.file_id)
    draft: Document = {
        "_id": new_job_id(),
        "owner": owner,
        "app": app.name,
        "params": dict(params.options),
        "file_id": params.file_id,
        "run_id": params.run_id or "",
        "created_at": stored_now(),
        "job_id": None,
        "starting_at": None,
        "aborted_at": None,
    }
    await ctx.drafts.add(draft)
    log.info("uws draft created", draft_id=draft["_id"], owner=owner, app=app.name)
    return str(draft["_id"])


@dataclass(frozen=True)
class Found:
    """A UWS job: its draft (if it was created as one) and its job (once submitted)."""

    draft: Document | None
    job: Document | None

    def view(self, app: App) -> UwsJobView:
        if self.job is not None:
            return job_view(self.job, app, self.draft)
        assert self.draft is not None
        return draft_view(self.draft, app)


async def find(ctx: UwsContext, app: App, owner: str, uws_id: str) -> Found:
    """The caller's UWS job ``uws_id`` in ``app``'s list; another user's or app's is a 404."""
    if not is_job_id(uws_id):
        raise _not_found(uws_id, app)
    draft = await ctx.drafts.get(owner, app.name, uws_id)
    if draft is not None:
        job = None
        if draft.get("job_id"):
            job = await job_cases.owned_job(ctx.jobs, owner, str(draft["job_id"]))
        return Found(draft, job)
    job = await ctx.jobs.get(owner, uws_id)
    if job is None or job.get("app") != app.name:
        raise _not_found(uws_id, app)
    alias = (await ctx.drafts.aliases(owner, [uws_id])).get(uws_id)
    return Found(alias, job)


async def start(ctx: UwsContext, app: App, owner: str, found: Found) -> None:
    """``PHASE=RUN``: submit a draft (once, however many ask); a submitted job is left as it is.

    A refused submission (the file was deleted meanwhile, the app cannot run here) is the
    use case's refusal (403), and the draft stays PENDING, to be fixed and run again.
    """
    draft = found.draft
    if found.job is not None or draft is None:
        return
    if draft.get("aborted_at"):
        raise ApiError(409, "The job was aborted before it ran; create a new one")
    now = stored_now()
    claimed = await ctx.drafts.claim(owner, str(draft["_id"]), now, now - STALE_CLAIM)
    if claimed is None:
        return  # another request is submitting it, or has
    request = JobRequest(
        app=app.name,
        file_id=str(claimed["file_id"]),
        options=dict(claimed.get("params") or {}),
        tag=str(claimed.get("run_id") or ""),
    )
    try:
        record = await _submit(ctx, request, owner)
    except BaseException:
        await ctx.drafts.release(str(claimed["_id"]))
        raise
    await ctx.drafts.attach(str(claimed["_id"]), str(record["_id"]))
    log.info("uws draft submitted", draft_id=claimed["_id"], job_id=record["_id"], owner=owner)


async def abort(ctx: UwsContext, owner: str, found: Found) -> None:
    """``PHASE=ABORT``: cancel a submitted job (an ended one stays as it is); a draft becomes ABORTED."""
    if found.job is not None:
        await job_cases.cancel(ctx.jobs, owner, str(found.job["_id"]))
        return
    assert found.draft is not None
    if found.draft.get("aborted_at") is not None:
        return
    if not await ctx.drafts.update_open(owner, str(found.draft["_id"]), {"aborted_at": stored_now()}):
        raise ApiError(409, "The job is being started; abort it again in a moment")


async def update_parameters(
    ctx: UwsContext, app: App, owner: str, found: Found, params: JobParameters
) -> None:
    """``POST .../parameters``: change a draft's options, input or run id before it runs."""
    draft = found.draft
    if found.job is not None or draft is None or draft.get("aborted_at") or draft.get("starting_at"):
        raise ApiError(409, "Parameters can be changed only while the job is PENDING")
    if params.run:
        raise ApiError(400, "Start the job with POST .../phase PHASE=RUN")
    options = {**(draft.get("params") or {}), **params.options}
    merged = JobParameters(options=options, file_id=params.file_id or draft["file_id"])
    _validated(app, merged)
    fields: Document = {"params": options}
    if params.file_id is not None:
        await _require_file(ctx, owner, params.file_id)
        fields["file_id"] = params.file_id
    if params.run_id is not None:
        fields["run_id"] = params.run_id
    if not await ctx.drafts.update_open(owner, str(draft["_id"]), fields):
        raise ApiError(409, "Parameters can be changed only while the job is PENDING")


async def current_phase(ctx: UwsContext, app: App, owner: str, uws_id: str) -> ExecutionPhase:
    return (await find(ctx, app, owner, uws_id)).view(app).phase


async def delete(ctx: UwsContext, app: App, owner: str, found: Found) -> None:
    """``DELETE``: a draft goes; a job is canceled first if it runs, then deleted (ARCHIVED).

    The job must have stopped before its outputs can go, so a running job's delete waits
    (up to the server's maximum wait) for the cancel to take; if it has not by then, 409
    and the client retries.
    """
    if found.job is None:
        assert found.draft is not None
        if not await ctx.drafts.remove_open(owner, str(found.draft["_id"])):
            raise ApiError(409, "The job is being started; delete it again in a moment")
        return
    job_id = str(found.job["_id"])
    phase = phase_of_job(found.job)
    if phase not in FINAL_PHASES:
        await job_cases.cancel(ctx.jobs, owner, job_id)

        async def read() -> ExecutionPhase:
            return phase_of_job(await job_cases.owned_job(ctx.jobs, owner, job_id))

        deadline = asyncio.get_running_loop().time() + ctx.max_wait_s
        while phase not in FINAL_PHASES:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise ApiError(
                    409, f"Cancel requested, but job {job_id} has not stopped yet; retry the DELETE"
                )
            phase = await wait_for_change(
                read, phase, left, poll_s=ctx.poll_s, job_id=job_id, signal=ctx.signal
            )
    await job_cases.delete(ctx.jobs, owner, job_id, jobs_root=ctx.jobs_root)


async def results(ctx: UwsContext, found: Found, base: str) -> list[ResultLink]:
    """The result links of a job that has ended with outputs; none before, none for a draft."""
    job = found.job
    if job is None or job.get("deleted_at") is not None or phase_of_job(job) not in FINAL_PHASES:
        return []
    directory = await asyncio.to_thread(job_dir, ctx.jobs_root, job)
    manifest = await asyncio.to_thread(load_manifest, directory)
    return result_links(str(job["_id"]), manifest, base)


async def job_list(ctx: UwsContext, app: App, owner: str, query: ListQuery) -> list[UwsJobView]:
    """The job list: drafts and jobs of ``app`` the filters keep, newest first, at most
    ``LAST`` (and never more than the server's maximum)."""
    wanted = phase_filter(query.phases)
    limit = min(query.last or ctx.max_list, ctx.max_list)
    views: list[UwsJobView] = []
    draft_phases = wanted.phases & {ExecutionPhase.PENDING, ExecutionPhase.ABORTED}
    if draft_phases:
        aborted = None if len(draft_phases) == 2 else ExecutionPhase.ABORTED in draft_phases
        drafts = await ctx.drafts.unsubmitted(
            owner, app.name, after=query.after, aborted=aborted, limit=limit
        )
        views.extend(draft_view(d, app) for d in drafts)
    if wanted.states:
        page = await job_cases.list_filtered(
            ctx.jobs,
            owner,
            states=sorted(wanted.states),
            app=app.name,
            since=query.after,
            limit=limit,
            after_id=None,
        )
        aliases = await ctx.drafts.aliases(owner, [str(j["_id"]) for j in page.items])
        for job in page.items:
            view = job_view(job, app, aliases.get(str(job["_id"])))
            if query.after is None or view.creation_time > query.after:
                views.append(view)
    views.sort(key=lambda v: (v.creation_time, v.uws_id), reverse=True)
    return views[:limit]
