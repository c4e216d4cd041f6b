"""The aiohttp application: middlewares, routes, and the routes' dependencies.

``create_app`` builds the application without any client; the clients come from the
:class:`~caesar_common.runtime.ServiceRuntime` that ``run_service`` (or a test) attaches
with ``add_operational_routes`` before the server starts, and
:func:`caesar_api.bootstrap.make_dependencies` turns it into the routes' dependencies.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

from caesar_api.auth import TokenVerifier, identity_of
from caesar_api.bootstrap import make_dependencies, make_token_verifier
from caesar_api.dependencies import Dependencies
from caesar_api.entrypoints.limits import ConnectionCount, connection_limit, server_options
from caesar_api.entrypoints.middlewares import (
    SETTINGS_KEY,
    VERIFIER_KEY,
    authenticate,
    json_errors,
    require_ready,
)
from caesar_api.entrypoints.routes import RouteHandler
from caesar_api.entrypoints.routes.admin import add_admin_routes
from caesar_api.entrypoints.routes.apps import add_app_routes
from caesar_api.entrypoints.routes.docs import add_docs_routes
from caesar_api.entrypoints.routes.events import add_event_routes
from caesar_api.entrypoints.routes.files import add_file_routes
from caesar_api.entrypoints.routes.jobs import add_job_routes
from caesar_api.entrypoints.routes.results import add_v1_result_routes
from caesar_api.entrypoints.routes.usage import add_usage_routes
from caesar_api.entrypoints.routes.v2 import add_v2_routes
from caesar_api.entrypoints.routes.v2_files import add_v2_file_routes
from caesar_api.entrypoints.routes.v2_jobs import add_v2_job_routes
from caesar_api.entrypoints.routes.web import add_web_routes
from caesar_api.entrypoints.routes.webhooks import add_webhook_routes
from caesar_api.settings import ApiSettings
from caesar_api.uws.routes import add_uws_routes
from caesar_common.logging import get_logger
from caesar_common.runtime import RUNTIME_KEY

log = get_logger(__name__)

DEPS_KEY: web.AppKey[Dependencies] = web.AppKey("api_dependencies", Dependencies)


def bind(route: RouteHandler) -> Handler:
    """An aiohttp handler calling ``route`` with the process's dependencies and the caller.

    The ``authenticate`` middleware has set the identity before any non-public route
    runs; with auth on an upload may defer it to its ``access_token`` form part (owner
    ``""`` until then, see ``routes/files.py``).
    """

    async def handler(request: web.Request) -> web.StreamResponse:
        return await route(request, request.app[DEPS_KEY], identity_of(request).owner)

    handler.__name__ = route.__name__
    handler.__doc__ = route.__doc__
    return handler


def bind_public(route: RouteHandler) -> Handler:
    """Like :func:`bind` for routes that belong to nobody (owner ``""``)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await route(request, request.app[DEPS_KEY], "")

    handler.__name__ = route.__name__
    handler.__doc__ = route.__doc__
    return handler


async def _wire(app: web.Application) -> None:
    """Build the routes' dependencies from the runtime attached to the app."""
    runtime = app.get(RUNTIME_KEY)
    if runtime is None:
        raise RuntimeError("attach a ServiceRuntime[ApiSettings] with add_operational_routes first")
    app[DEPS_KEY] = make_dependencies(runtime)
    if not app[SETTINGS_KEY].auth_enabled:
        log.warning("authentication is OFF: every caller is the owner 'anonymous' (local use only)")
        return
    verifier = app[VERIFIER_KEY]
    log.info("authentication is on", issuer=verifier.issuer, audience=verifier.audience)
    # Fetch the keys now so the first request does not wait; a Keycloak that is not up
    # yet is retried when the first token arrives.
    await verifier.refresh(force=True)


async def _end_streams(app: web.Application) -> None:
    """Shutdown: end every SSE stream cleanly before the server waits for open requests
    (aiohttp runs on_shutdown first), so a graceful stop never waits on a stream."""
    deps = app.get(DEPS_KEY)
    if deps is not None:
        deps.push.hub.close_all()


async def _close_clients(app: web.Application) -> None:
    """Close the routes' outgoing connections once the server has stopped taking requests."""
    deps = app.get(DEPS_KEY)
    if deps is not None:
        await deps.accounting.aclose()


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
    # The connection limit comes first: a connection beyond it costs no auth, no handler.
    app = web.Application(
        middlewares=[
            connection_limit(ConnectionCount(settings.http_max_connections)),
            json_errors,
            authenticate,
            require_ready,
        ],
        handler_args=server_options(settings),
    )
    app[SETTINGS_KEY] = settings
    if settings.auth_enabled:
        app[VERIFIER_KEY] = verifier or make_token_verifier(settings)
    app.on_startup.append(_wire)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_close_clients)
    router = app.router
    add_file_routes(router, bind)
    add_app_routes(router, bind)
    add_job_routes(router, bind)
    add_v1_result_routes(router, bind)  # /job/<id>/sources, /preview, ...
    add_v2_routes(router, bind)  # /api/v2/apps, /api/v2/jobs/{id}/catalog, files, preview
    add_v2_job_routes(router, bind)  # /api/v2/jobs: submit, list, get, cancel, delete, archive
    add_v2_file_routes(router, bind)  # /api/v2/files: upload, list, get, content, delete
    add_admin_routes(router, bind)  # /api/v2/admin/dead-letters (list, replay)
    add_event_routes(router, bind)  # /api/v2/jobs/{id}/events, /api/v2/events: SSE
    add_webhook_routes(router, bind)  # /api/v2/webhooks and their deliveries
    add_usage_routes(router, bind)  # /accounting, /appstats, /api/v2/accounting/usage
    add_uws_routes(app, bind)  # /uws/<app>/...: IVOA UWS 1.1
    add_docs_routes(router, bind_public)  # /openapi.json, /docs
    add_web_routes(router, bind_public)  # /: the web page, /web/config.json, /web/<file>
    return app
