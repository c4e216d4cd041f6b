"""Usage reports over HTTP (internal; the api serves them to users and admins).

``GET /usage?owner=<owner>`` is one user's usage with per-app and per-day breakdowns;
``GET /usage/all`` is everyone's (number of users, totals, per app);
``GET /usage/report?group_by=user|app|day&from=&to=&owner=`` is the usage of the jobs
submitted (files uploaded) in a date range, one row per group. The api decides who may
see what; this service answers any caller that can reach it, so its port is never
published (compose: ``expose`` only).

Each route is a plain function of the request and the service's dependencies; errors are
JSON ``{"error": ...}`` (400 for bad parameters, 503 until broker and database are up).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from caesar_accounting.bootstrap import make_deps
from caesar_accounting.domain.reports import global_report, owner_report, usage_report
from caesar_accounting.handlers import AccountingDeps
from caesar_common.events import utcnow
from caesar_common.ids import OWNER_RE
from caesar_common.runtime import RUNTIME_KEY
from caesar_common.usage_query import UsageQuery, UsageQueryError

UsageRoute = Callable[[web.Request, AccountingDeps], Awaitable[web.Response]]


def _stamped(report: dict[str, Any]) -> web.Response:
    """Reports are computed on read; the timestamp says when (v1 ``timestamp``)."""
    return web.json_response({**report, "timestamp": utcnow().isoformat()})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def with_deps(route: UsageRoute) -> Handler:
    """An aiohttp handler calling ``route`` with the process's dependencies (503 until ready)."""

    async def handler(request: web.Request) -> web.Response:
        runtime = request.app[RUNTIME_KEY]
        if not runtime.ready:
            return _error(503, "not ready")
        return await route(request, make_deps(runtime))

    handler.__name__ = route.__name__
    handler.__doc__ = route.__doc__
    return handler


async def get_owner_usage(request: web.Request, deps: AccountingDeps) -> web.Response:
    owner = request.query.get("owner", "")
    if not OWNER_RE.fullmatch(owner):
        return _error(400, "missing or malformed owner")
    return _stamped(owner_report(owner, await deps.jobs.of_owner(owner), await deps.files.of_owner(owner)))


async def get_global_usage(request: web.Request, deps: AccountingDeps) -> web.Response:
    return _stamped(global_report(await deps.jobs.everyone(), await deps.files.everyone()))


async def get_usage_report(request: web.Request, deps: AccountingDeps) -> web.Response:
    """One owner's documents (or everyone's), narrowed to the range by the pure report."""
    try:
        query = UsageQuery.parse(request.query, owner_key="owner")
    except UsageQueryError as exc:
        return _error(400, str(exc))
    if query.owner is None:
        jobs, files = await deps.jobs.everyone(), await deps.files.everyone()
    else:
        jobs, files = await deps.jobs.of_owner(query.owner), await deps.files.of_owner(query.owner)
    return _stamped(usage_report(jobs, files, query))


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/usage", with_deps(get_owner_usage))
    app.router.add_get("/usage/all", with_deps(get_global_usage))
    app.router.add_get("/usage/report", with_deps(get_usage_report))
    return app
