"""The aiohttp application: routes, JSON errors, wiring of the handlers' dependencies.

``create_app`` builds the application without any client; the clients come from the
:class:`~caesar_common.runtime.ServiceRuntime` that ``run_service`` (or a test) attaches
with ``add_operational_routes`` before the server starts. Every error leaves as JSON
(``{"status": message}``): handlers raise :class:`ApiError`, aiohttp's own 404/405/413
are translated, and anything unexpected becomes a 500 without a stack trace or request
body in the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import ClientPayloadError, web
from aiohttp.typedefs import Handler
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

from caesar_api.adapters.files_repo import FilesRepository
from caesar_api.adapters.jobs_repo import JobsRepository
from caesar_api.adapters.storage import UploadStorage
from caesar_api.domain.errors import ApiError
from caesar_api.handlers import apps, docs, files, jobs
from caesar_api.handlers.deps import Dependencies
from caesar_api.settings import ApiSettings
from caesar_common.logging import get_logger
from caesar_common.runtime import RUNTIME_KEY

log = get_logger(__name__)

V1 = "/caesar/api/v1.0"
ANONYMOUS = "anonymous"

SETTINGS_KEY: web.AppKey[ApiSettings] = web.AppKey("api_settings", ApiSettings)
DEPS_KEY: web.AppKey[Dependencies] = web.AppKey("api_dependencies", Dependencies)

RouteHandler = Callable[[web.Request, Dependencies, str], Awaitable[web.StreamResponse]]


def caller_owner(request: web.Request, settings: ApiSettings) -> str:
    """The owner id of the caller.

    Authentication is not implemented yet: with it off every caller is ``anonymous``
    (``create_app`` refuses to start with it on, rather than run open).
    """
    return ANONYMOUS


def _bind(handler: RouteHandler, *, public: bool = False) -> Handler:
    """An aiohttp handler calling ``handler`` with the process's dependencies and caller."""

    async def route(request: web.Request) -> web.StreamResponse:
        deps = request.app[DEPS_KEY]
        owner = "" if public else caller_owner(request, deps.settings)
        return await handler(request, deps, owner)

    route.__name__ = handler.__name__
    route.__doc__ = handler.__doc__
    return route


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"status": message}, status=status, headers=headers)


_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into the one JSON error shape; never an HTML page."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json_error(exc.http_status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _json_error(exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason), headers)
    except (ConnectionResetError, ClientPayloadError) as exc:
        # The client went away mid-request; nobody reads this answer.
        log.info("client disconnected", path=request.path, error=type(exc).__name__)
        return _json_error(400, "Request interrupted")
    except asyncio.CancelledError:
        raise
    except Exception:
        # Method and path only: bodies and query strings may hold tokens or data.
        log.exception("unhandled error", method=request.method, path=request.path)
        return _json_error(500, "Internal server error")


@web.middleware
async def require_ready(request: web.Request, handler: Handler) -> web.StreamResponse:
    """503 on API routes until the broker and database are connected."""
    if request.path.startswith(V1 + "/"):
        runtime = request.app.get(RUNTIME_KEY)
        if runtime is None or not runtime.ready:
            return _json_error(503, "Service starting, not ready yet; retry shortly")
    return await handler(request)


async def _wire(app: web.Application) -> None:
    """Build the handlers' dependencies from the runtime attached to the app."""
    runtime = app.get(RUNTIME_KEY)
    if runtime is None:
        raise RuntimeError("attach a ServiceRuntime with add_operational_routes first")
    settings = app[SETTINGS_KEY]
    app[DEPS_KEY] = Dependencies(
        settings=settings,
        files=FilesRepository(runtime.collection("files"), runtime.name),
        jobs=JobsRepository(runtime.collection("jobs"), runtime.name),
        storage=UploadStorage(settings.data_root),
        relay=runtime.relay,
    )
    log.warning("authentication is OFF: every caller is the owner 'anonymous' (local use only)")


def create_app(settings: ApiSettings) -> web.Application:
    """The api's aiohttp application (routes and middlewares; clients come at start-up)."""
    if settings.auth_enabled:
        raise ValueError("auth_enabled=true is not supported yet: refusing to serve without checking tokens")
    # Every request becomes a server span (the instrumentor inserts its middleware first),
    # whose context the events created while handling it carry on through the outbox.
    instrumentor = AioHttpServerInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
    app = web.Application(middlewares=[json_errors, require_ready])
    app[SETTINGS_KEY] = settings
    app.on_startup.append(_wire)
    add = app.router
    add.add_post(f"{V1}/upload", _bind(files.upload_file))
    add.add_get(f"{V1}/fileids", _bind(files.list_files), allow_head=False)
    add.add_get(f"{V1}/download/{{file_id}}", _bind(files.download_file), allow_head=False)
    add.add_post(f"{V1}/download/{{file_id}}", _bind(files.download_file))
    add.add_get(f"{V1}/download", _bind(files.download_redirect), allow_head=False)
    add.add_post(f"{V1}/download", _bind(files.download_redirect))
    add.add_get(f"{V1}/delete/{{file_id}}", _bind(files.delete_file), allow_head=False)
    add.add_post(f"{V1}/delete/{{file_id}}", _bind(files.delete_file))
    add.add_get(f"{V1}/apps", _bind(apps.list_apps), allow_head=False)
    add.add_get(f"{V1}/app/{{name}}/describe", _bind(apps.describe_app), allow_head=False)
    add.add_post(f"{V1}/job", _bind(jobs.submit_job))
    add.add_get(f"{V1}/job/{{job_id}}/status", _bind(jobs.get_job_status), allow_head=False)
    add.add_get(f"{V1}/job/{{job_id}}/output", _bind(jobs.get_job_output), allow_head=False)
    add.add_get(f"{V1}/job/{{job_id}}/cancel", _bind(jobs.cancel_job), allow_head=False)
    add.add_post(f"{V1}/job/{{job_id}}/cancel", _bind(jobs.cancel_job))
    add.add_get(f"{V1}/jobs", _bind(jobs.list_jobs), allow_head=False)
    add.add_get("/openapi.json", _bind(docs.openapi_document, public=True), allow_head=False)
    add.add_get("/docs", _bind(docs.docs_page, public=True), allow_head=False)
    add.add_get("/docs/{asset}", _bind(docs.docs_asset, public=True), allow_head=False)
    return app
