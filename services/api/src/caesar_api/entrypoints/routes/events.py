"""Server-Sent Events: ``GET /api/v2/jobs/{job_id}/events`` and ``GET /api/v2/events``.

The route checks everything that can be refused (parameters, the job, the number of
streams) before it starts the answer, so a refusal is an ordinary problem+json; then it
subscribes to this process's hub *before* reading what it replays (see
:mod:`caesar_api.push.service.streams`) and writes the frames until the stream ends.

``aiohttp-sse`` is not used: its keep-alive is a fixed ``: ping`` written by a task of
its own, concurrently with the events, while this stream's heartbeats are part of one
sequence of frames (``: keep-alive`` by the contract), and ending the stream on a
slow client or at shutdown needs control over the writes that the package hides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Final

from aiohttp import web

from caesar_api.auth import is_admin
from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError, shown
from caesar_api.entrypoints.routes import V2, Binder
from caesar_api.entrypoints.routes.problems import with_problems
from caesar_api.push.domain.resume import user_replay_since
from caesar_api.push.domain.sse import BadEventId, parse_job_event_id, parse_user_event_id, retry_frame
from caesar_api.push.service.hub import SLOW_CLIENT, HubClosed, Subscriber, TooManyStreams
from caesar_api.push.service.streams import StreamLimits, job_frames, read_model_settles, user_frames
from caesar_api.service import jobs as job_cases
from caesar_common.logging import get_logger

log = get_logger(__name__)

LAST_EVENT_ID: Final = "Last-Event-ID"
RECONNECT_MS: Final = 2000
STREAM_HEADERS: Final = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}


def last_event_id(request: web.Request) -> str | None:
    """The id to resume after: the header (what EventSource sends), else ``?last_event_id=``.

    An empty one is not "none" but an id this server never sends (a 400): EventSource
    sends the header only when it has an id.
    """
    value = request.headers.get(LAST_EVENT_ID)
    if value is None:
        value = request.query.get("last_event_id")
    return value


QUERY_PARAMETERS: Final = frozenset({"timeout_s", "last_event_id"})


def stream_limits(request: web.Request, deps: Dependencies) -> StreamLimits:
    """The stream's heartbeat and duration: ``?timeout_s=`` (1 to the server's maximum) or the maximum.

    Any other query parameter is a 400: a typo (``?timeout=``) would otherwise leave a
    client waiting an hour for a stream it meant to bound.
    """
    unknown = sorted(set(request.query) - QUERY_PARAMETERS)
    if unknown:
        raise ApiError(400, f"Unknown query parameter {shown(unknown[0])}; use timeout_s or last_event_id")
    longest = deps.settings.sse_max_stream_s
    raw = request.query.get("timeout_s")
    duration = longest
    if raw is not None:
        seconds = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
        if not 1 <= seconds <= longest:
            raise ApiError(400, f"Invalid timeout_s {shown(raw)}: expected an integer from 1 to {longest:g}")
        duration = float(seconds)
    return StreamLimits(deps.settings.sse_heartbeat_s, duration)


def _subscribe(deps: Dependencies, owner: str, job_id: str | None, caller: str) -> Subscriber:
    try:
        return deps.push.hub.subscribe(owner, job_id, caller=caller)
    except TooManyStreams:
        limit = deps.settings.sse_max_streams_per_user
        raise ApiError(
            429,
            f"You have {limit} event streams open, the most allowed; close one",
            headers={"Retry-After": "5"},
        ) from None
    except HubClosed:
        raise ApiError(503, "The server is stopping; reconnect", headers={"Retry-After": "1"}) from None


async def _write(
    request: web.Request, subscriber: Subscriber, frames: AsyncIterator[bytes]
) -> web.StreamResponse:
    """Stream ``frames``; a slow client is cut off by aborting its connection (a blocked
    write then fails at once), a client that left ends the loop on the next write."""
    response = web.StreamResponse(headers=STREAM_HEADERS)
    await response.prepare(request)
    transport = request.transport

    def on_close(reason: str) -> None:
        if reason == SLOW_CLIENT and transport is not None:
            transport.abort()

    subscriber.on_close = on_close
    try:
        await response.write(retry_frame(RECONNECT_MS))
        async for frame in frames:
            await response.write(frame)
        await response.write_eof()
    except ConnectionResetError:  # the client left, or was cut off
        log.debug("event stream ended by the connection", reason=subscriber.closed_reason)
    return response


async def job_events(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/events``: the job's states until a final one."""
    job_id = request.match_info["job_id"]
    # The job first: an unknown or foreign job is a 404 whatever else the request says.
    job = await job_cases.owned_job(deps.jobs, owner, job_id, admin=is_admin(request))
    limits = stream_limits(request, deps)
    raw_id = last_event_id(request)
    try:
        after = parse_job_event_id(raw_id) if raw_id is not None else None
    except BadEventId as exc:
        raise ApiError(400, f"Invalid {LAST_EVENT_ID} {shown(raw_id)}: {exc}") from None
    if after is not None and after.is_final:
        # The client has the end already; 204 tells EventSource not to reconnect.
        return web.Response(status=204)
    subscriber = _subscribe(deps, str(job["owner"]), job_id, owner)
    try:
        # Read again now that live events are queued: nothing falls in between.
        fresh = await deps.push.history.job(job_id)
        settle = read_model_settles(deps.push.history, deps.settings.sse_settle_s)
        frames = job_frames(subscriber, fresh or job, after, limits, settle=settle)
        return await _write(request, subscriber, frames)
    finally:
        deps.push.hub.unsubscribe(subscriber)


async def user_events(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/events``: the states of every job of the caller, as they happen."""
    limits = stream_limits(request, deps)
    raw_id = last_event_id(request)
    try:
        since = parse_user_event_id(raw_id) if raw_id is not None else None
    except BadEventId as exc:
        raise ApiError(400, f"Invalid {LAST_EVENT_ID} {shown(raw_id)}: {exc}") from None
    subscriber = _subscribe(deps, owner, None, owner)
    try:
        cutoff = None
        replay = None
        if since is not None:
            cutoff = user_replay_since(since, timedelta(seconds=deps.settings.sse_resume_margin_s))
            replay = deps.push.history.applied_since(owner, cutoff)
        settle = read_model_settles(deps.push.history, deps.settings.sse_settle_s)
        frames = user_frames(subscriber, replay, cutoff, limits, settle=settle)
        return await _write(request, subscriber, frames)
    finally:
        deps.push.hub.unsubscribe(subscriber)


def add_event_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the SSE routes."""
    router.add_get(f"{V2}/jobs/{{job_id}}/events", bind(with_problems(job_events)), allow_head=False)
    router.add_get(f"{V2}/events", bind(with_problems(user_events)), allow_head=False)
