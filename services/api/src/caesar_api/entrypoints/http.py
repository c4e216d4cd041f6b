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
from caesar_api.auth import (
    ANONYMOUS_IDENTITY,
    IDENTITY_KEY,
    AuthError,
    KeycloakKeys,
    TokenVerifier,
    identity_of,
)
from caesar_api.auth.identity import DEFERRED_IDENTITY, TOKEN_CHECK_KEY
from caesar_api.auth.public import is_public
from caesar_api.domain.errors import ApiError
from caesar_api.handlers import apps, docs, files, jobs
from caesar_api.handlers.admin import add_admin_routes
from caesar_api.handlers.deps import Dependencies
from caesar_api.handlers.results import add_v1_result_routes
from caesar_api.handlers.v2 import add_v2_routes
from caesar_api.settings import ApiSettings
from caesar_common.logging import get_logger
from caesar_common.runtime import RUNTIME_KEY

log = get_logger(__name__)

V1 = "/caesar/api/v1.0"
ANONYMOUS = ANONYMOUS_IDENTITY.owner

SETTINGS_KEY: web.AppKey[ApiSettings] = web.AppKey("api_settings", ApiSettings)
DEPS_KEY: web.AppKey[Dependencies] = web.AppKey("api_dependencies", Dependencies)
VERIFIER_KEY: web.AppKey[TokenVerifier] = web.AppKey("api_token_verifier", TokenVerifier)
FORM_TYPE = "application/x-www-form-urlencoded"

RouteHandler = Callable[[web.Request, Dependencies, str], Awaitable[web.StreamResponse]]


def caller_owner(request: web.Request, settings: ApiSettings) -> str:
    """The owner id of the caller: the token subject, or ``anonymous`` with auth off.

    The ``authenticate`` middleware has set the identity before any non-public handler
    runs; with auth on an upload may defer it to its ``access_token`` form part (owner
    ``""`` until then, see ``handlers/files.py``).
    """
    return identity_of(request).owner


def auth_error(exc: AuthError) -> web.Response:
    """401 with the RFC 6750 challenge (403/503 without); never echoes the token."""
    headers = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="caesar", error="invalid_token"'}
    return _json_error(exc.status, exc.message, headers)


def _header_token(request: web.Request) -> str | None:
    value = request.headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Invalid Authorization header: expected 'Bearer <token>'")
    return token.strip()


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the caller's identity, or answer 401 before any handler runs.

    Tokens come in ``Authorization: Bearer``, or (v1 clients) in an ``access_token``
    form field: urlencoded bodies here, multipart uploads in the upload handler, which
    must read the field before the file. Tokens in the query string are refused even
    with a valid header: URLs end up in proxy logs and browser history.
    """
    settings = request.app[SETTINGS_KEY]
    if not settings.auth_enabled:
        request[IDENTITY_KEY] = ANONYMOUS_IDENTITY
        return await handler(request)
    if is_public(request.path):
        return await handler(request)
    verifier = request.app[VERIFIER_KEY]
    try:
        if "access_token" in request.query:
            raise AuthError("Tokens in the query string are not accepted: send 'Authorization: Bearer'")
        token = _header_token(request)
        if token is None and request.method == "POST" and request.content_type == FORM_TYPE:
            value = (await request.post()).get("access_token")
            token = value if isinstance(value, str) and value else None
        if (
            token is None
            and request.method == "POST"
            and request.path == f"{V1}/upload"
            and request.content_type.startswith("multipart/")
        ):
            request[IDENTITY_KEY] = DEFERRED_IDENTITY
            request[TOKEN_CHECK_KEY] = verifier.verify
            return await handler(request)
        if token is None:
            raise AuthError("Missing bearer token")
        request[IDENTITY_KEY] = await verifier.verify(token)
    except AuthError as exc:
        # The reason only: the token itself never reaches a log line.
        log.info("request not authenticated", method=request.method, path=request.path, reason=exc.message)
        return auth_error(exc)
    return await handler(request)


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
    except AuthError as exc:
        return auth_error(exc)
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
        raise RuntimeError("attach a ServiceRuntime[ApiSettings] with add_operational_routes first")
    settings = app[SETTINGS_KEY]
    app[DEPS_KEY] = Dependencies(
        settings=settings,
        files=FilesRepository(runtime.collection("files"), runtime.name),
        jobs=JobsRepository(runtime.collection("jobs"), runtime.name),
        storage=UploadStorage(settings.data_root),
        relay=runtime.relay,
        bus=runtime.bus,
    )
    if not settings.auth_enabled:
        log.warning("authentication is OFF: every caller is the owner 'anonymous' (local use only)")
        return
    verifier = app[VERIFIER_KEY]
    log.info("authentication is on", issuer=verifier.issuer, audience=verifier.audience)
    # Fetch the keys now so the first request does not wait; a Keycloak that is not up
    # yet is retried when the first token arrives.
    await verifier.refresh(force=True)


def create_app(settings: ApiSettings, *, verifier: TokenVerifier | None = None) -> web.Application:
    """The api's aiohttp application (routes and middlewares; clients come at start-up).

    With auth on, ``verifier`` (tests pass one with their own keys) defaults to one that
    fetches the realm's keys from Keycloak.
    """
    # Every request becomes a server span (the instrumentor inserts its middleware first),
    # whose context the events created while handling it carry on through the outbox.
    instrumentor = AioHttpServerInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
    app = web.Application(middlewares=[json_errors, authenticate, require_ready])
    app[SETTINGS_KEY] = settings
    if settings.auth_enabled:
        app[VERIFIER_KEY] = verifier or TokenVerifier(
            KeycloakKeys(settings.keycloak_url, settings.keycloak_realm, settings.keycloak_audience),
            issuer=settings.expected_issuer,
            audience=settings.keycloak_audience,
            admin_role=settings.admin_role,
            required_role=settings.user_role,
            leeway_s=settings.token_leeway_s,
            refresh_interval_s=settings.jwks_refresh_interval_s,
        )
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
    add_v1_result_routes(add, _bind)  # /job/<id>/sources, /preview, ...
    add_v2_routes(add, _bind)  # /api/v2/apps, /api/v2/jobs/{id}/catalog, files, preview
    add_admin_routes(add, _bind)  # /api/v2/admin/dead-letters (list, replay)
    add.add_get("/openapi.json", _bind(docs.openapi_document, public=True), allow_head=False)
    add.add_get("/docs", _bind(docs.docs_page, public=True), allow_head=False)
    add.add_get("/docs/{asset}", _bind(docs.docs_asset, public=True), allow_head=False)
    return app
