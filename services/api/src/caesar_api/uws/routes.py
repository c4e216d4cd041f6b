"""The UWS 1.1 REST binding: ``/uws/<app>`` and its job resources (aiohttp handlers).

Each handler parses the request, calls a use case of :mod:`caesar_api.uws.service` and
renders XML or text. Errors are plain text with the right status (UWS clients read
neither JSON nor problem details); state-changing requests answer 303 as UWS 1.1
section 2.2.3 requires: to the job, or to the job list after a delete.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

from aiohttp import web
from multidict import MultiDictProxy

from caesar_api.auth import identity_of
from caesar_api.dependencies import Dependencies
from caesar_api.domain.apps import unavailable_reason
from caesar_api.domain.errors import ApiError, shown
from caesar_api.entrypoints.limits import read_within
from caesar_api.entrypoints.routes import Binder, RouteHandler
from caesar_api.uws import service
from caesar_api.uws.drafts import COLLECTION, DraftsRepository
from caesar_api.uws.params import (
    parse_int,
    parse_list_query,
    parse_parameters,
    parse_time,
    parse_wait,
)
from caesar_api.uws.views import error_text
from caesar_api.uws.wait import ChangeSignal, should_block, wait_for_change
from caesar_api.uws.xml import MEDIA_TYPE, job_list_xml, job_xml, parameters_xml, results_xml
from caesar_common.apps import App, get_app
from caesar_common.runtime import RUNTIME_KEY

UWS: Final = "/uws"
DRAFTS_KEY: web.AppKey[DraftsRepository] = web.AppKey("uws_drafts", DraftsRepository)
SIGNAL_KEY: web.AppKey[ChangeSignal] = web.AppKey("uws_change_signal", ChangeSignal)  # type: ignore[type-abstract]
"""Optional: an in-process notification of job changes that wakes ``WAIT`` early."""


def text(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain", charset="utf-8", headers=headers)


def xml(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=MEDIA_TYPE, charset="utf-8")


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location}, text=f"See {location}\n")


def with_text_errors(handler: RouteHandler) -> RouteHandler:
    """Answer an :class:`ApiError` as plain text; 503 until broker and database are up."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
        runtime = request.app.get(RUNTIME_KEY)
        if runtime is None or not runtime.ready:
            return text("Service starting, not ready yet; retry shortly\n", 503, {"Retry-After": "2"})
        try:
            return await handler(request, deps, owner)
        except ApiError as exc:
            return text(exc.message + "\n", exc.http_status, exc.headers or None)

    return wrapped


def _app(request: web.Request) -> App:
    name = request.match_info["app"]
    app = get_app(name)
    if app is None:
        raise ApiError(404, f"No UWS job list {shown(name)}: no such app")
    return app


def _list_url(request: web.Request, app: App) -> str:
    return f"{request.url.origin()}{UWS}/{app.name}"


def _job_url(request: web.Request, app: App, uws_id: str) -> str:
    return f"{_list_url(request, app)}/{uws_id}"


def _context(request: web.Request, deps: Dependencies) -> service.UwsContext:
    settings = deps.settings
    return service.UwsContext(
        jobs=deps.jobs,
        files=deps.files,
        drafts=request.app[DRAFTS_KEY],
        runnable_executors=settings.runnable_executors,
        jobs_root=settings.jobs_root,
        max_list=settings.max_page_size,
        max_wait_s=settings.uws_max_wait_s,
        poll_s=settings.uws_wait_poll_s,
        roles=identity_of(request).roles,
        signal=request.app.get(SIGNAL_KEY),
    )


async def _form(request: web.Request, deps: Dependencies) -> list[tuple[str, str]]:
    """The query's and the body's parameters, in order (a file part is refused)."""
    fields = list(request.query.items())
    if request.method != "POST" or not request.body_exists:
        return fields
    try:
        body: MultiDictProxy[str | bytes | bytearray | web.FileField] = await read_within(
            deps.settings.http_body_timeout_s, request.post()
        )
    except ValueError:
        raise ApiError(400, "Malformed form body") from None
    for name, value in body.items():
        if not isinstance(value, str):
            raise ApiError(
                400,
                f"Parameter {shown(name)}: inline uploads are not accepted; upload the file and give its id",
            )
        fields.append((name, value))
    return fields


def _field(fields: list[tuple[str, str]], name: str) -> str:
    """The one value of a required form parameter (name in any case)."""
    values = [v for k, v in fields if k.lower() == name.lower()]
    if len(values) != 1:
        raise ApiError(400, f"Give {name} exactly once")
    return values[0]


async def list_jobs(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /uws/<app>``: the job list (``PHASE`` repeatable, ``AFTER``, ``LAST``)."""
    app = _app(request)
    query = parse_list_query(request.query.items())
    views = await service.job_list(_context(request, deps), app, owner, query)
    return xml(job_list_xml(views, _list_url(request, app) + "/{id}"))


async def create_job(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``POST /uws/<app>``: a new job (``PHASE=RUN``: started at once); 303 to it."""
    app = _app(request)
    reason = unavailable_reason(app, deps.settings.runnable_executors)
    if reason is not None:
        raise ApiError(service.REFUSED, f"App {app.name} {reason}")
    params = parse_parameters(await _form(request, deps), app)
    uws_id = await service.create(_context(request, deps), app, owner, params)
    return see_other(_job_url(request, app, uws_id))


async def get_job(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /uws/<app>/<id>[?WAIT=s[&PHASE=p]]``: the job, after blocking if asked."""
    app, uws_id, ctx = _app(request), request.match_info["job_id"], _context(request, deps)
    wait = parse_wait(request.query.items(), ctx.max_wait_s)
    found = await service.find(ctx, app, owner, uws_id)
    view = found.view(app)
    if should_block(view.phase, wait):
        await wait_for_change(
            lambda: service.current_phase(ctx, app, owner, uws_id),
            view.phase,
            wait.seconds,
            poll_s=ctx.poll_s,
            job_id=str(found.job["_id"]) if found.job else "",
            signal=ctx.signal,
        )
        found = await service.find(ctx, app, owner, uws_id)
        view = found.view(app)
    links = await service.results(ctx, found, str(request.url.origin()))
    return xml(job_xml(view, links))


async def post_job(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``POST /uws/<app>/<id>`` with ``ACTION=DELETE``: as ``DELETE``."""
    fields = await _form(request, deps)
    action = _field(fields, "ACTION")
    if action.strip().upper() != "DELETE":
        raise ApiError(400, f"Unknown ACTION {shown(action)}; only ACTION=DELETE")
    return await delete_job(request, deps, owner)


async def delete_job(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``DELETE /uws/<app>/<id>``: cancel it if it runs, remove it; 303 to the job list."""
    app, ctx = _app(request), _context(request, deps)
    found = await service.find(ctx, app, owner, request.match_info["job_id"])
    await service.delete(ctx, app, owner, found)
    return see_other(_list_url(request, app))


async def get_phase(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET .../phase``: the phase name as text."""
    app = _app(request)
    found = await service.find(_context(request, deps), app, owner, request.match_info["job_id"])
    return text(found.view(app).phase.value)


async def post_phase(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``POST .../phase`` ``PHASE=RUN`` or ``PHASE=ABORT``; 303 to the job."""
    app, ctx, uws_id = _app(request), _context(request, deps), request.match_info["job_id"]
    phase = _field(await _form(request, deps), "PHASE").strip().upper()
    if phase not in ("RUN", "ABORT"):
        raise ApiError(400, f"Unknown PHASE {shown(phase)}; use RUN or ABORT")
    found = await service.find(ctx, app, owner, uws_id)
    if phase == "RUN":
        await service.start(ctx, app, owner, found)
    else:
        await service.abort(ctx, owner, found)
    return see_other(_job_url(request, app, uws_id))


async def get_parameters(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET .../parameters``: ``uws:parameters``."""
    app = _app(request)
    found = await service.find(_context(request, deps), app, owner, request.match_info["job_id"])
    return xml(parameters_xml(found.view(app)))


async def post_parameters(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``POST .../parameters``: change a PENDING job's parameters; 303 to the job."""
    app, ctx, uws_id = _app(request), _context(request, deps), request.match_info["job_id"]
    params = parse_parameters(await _form(request, deps), app)
    found = await service.find(ctx, app, owner, uws_id)
    await service.update_parameters(ctx, app, owner, found, params)
    return see_other(_job_url(request, app, uws_id))


async def get_results(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET .../results``: ``uws:results`` (empty until the job has ended with outputs)."""
    app, ctx = _app(request), _context(request, deps)
    found = await service.find(ctx, app, owner, request.match_info["job_id"])
    return xml(results_xml(await service.results(ctx, found, str(request.url.origin()))))


async def get_error(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET .../error``: what went wrong, as text; 404 for a job without an error."""
    app = _app(request)
    found = await service.find(_context(request, deps), app, owner, request.match_info["job_id"])
    detail = error_text(found.view(app))
    if detail is None:
        raise ApiError(404, "The job has no error (its phase is not ERROR)")
    return text(detail)


def _scalar(read: Callable[[service.Found, App], str]) -> RouteHandler:
    async def handler(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
        app = _app(request)
        found = await service.find(_context(request, deps), app, owner, request.match_info["job_id"])
        return text(read(found, app))

    return handler


get_execution_duration = _scalar(lambda found, app: str(found.view(app).execution_duration))
get_execution_duration.__doc__ = "``GET .../executionduration``: the wall-time limit in seconds."
get_destruction = _scalar(lambda found, app: "")
get_destruction.__doc__ = "``GET .../destruction``: empty (no destruction time is set)."
get_quote = _scalar(lambda found, app: "")
get_quote.__doc__ = "``GET .../quote``: empty (the completion time is not predicted)."
get_owner = _scalar(lambda found, app: found.view(app).owner)
get_owner.__doc__ = "``GET .../owner``: the owner's id."


def _kept_value(name: str, parse: Callable[[str], object]) -> RouteHandler:
    """A POST the spec lets the server answer with its own value: checked, then 303 to the job."""

    async def handler(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
        app, uws_id = _app(request), request.match_info["job_id"]
        parse(_field(await _form(request, deps), name))
        await service.find(_context(request, deps), app, owner, uws_id)
        return see_other(_job_url(request, app, uws_id))

    return handler


post_execution_duration = _kept_value(
    "EXECUTIONDURATION", lambda v: parse_int("EXECUTIONDURATION", v, minimum=0)
)
post_execution_duration.__doc__ = "``POST .../executionduration``: accepted, the app's wall time is kept."
post_destruction = _kept_value("DESTRUCTION", lambda v: parse_time("DESTRUCTION", v))
post_destruction.__doc__ = "``POST .../destruction``: accepted, no destruction time is set."


def add_uws_routes(app: web.Application, bind: Binder) -> None:
    """Register ``/uws/{app}/...`` and the drafts repository (built when the app starts)."""

    async def drafts(web_app: web.Application) -> None:
        web_app[DRAFTS_KEY] = DraftsRepository(web_app[RUNTIME_KEY].collection(COLLECTION))

    app.on_startup.append(drafts)
    router = app.router

    def add(method: str, path: str, handler: RouteHandler) -> None:
        router.add_route(method, f"{UWS}/{{app}}{path}", bind(with_text_errors(handler)))

    add("GET", "", list_jobs)
    add("POST", "", create_job)
    job = "/{job_id}"
    add("GET", job, get_job)
    add("POST", job, post_job)
    add("DELETE", job, delete_job)
    for name, getter, poster in (
        ("phase", get_phase, post_phase),
        ("parameters", get_parameters, post_parameters),
        ("executionduration", get_execution_duration, post_execution_duration),
        ("destruction", get_destruction, post_destruction),
    ):
        add("GET", f"{job}/{name}", getter)
        add("POST", f"{job}/{name}", poster)
    add("GET", f"{job}/results", get_results)
    add("GET", f"{job}/error", get_error)
    add("GET", f"{job}/quote", get_quote)
    add("GET", f"{job}/owner", get_owner)
