"""Usage reports over HTTP (internal; the api serves them to users and admins).

``GET /usage?owner=<owner>`` is one user's usage with per-app and per-day breakdowns;
``GET /usage/all`` is everyone's (number of users, totals, per app). The api decides who
may see what; this service answers any caller that can reach it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from caesar_accounting.bootstrap import make_deps
from caesar_accounting.domain.reports import global_report, owner_report
from caesar_common.events import utcnow
from caesar_common.ids import OWNER_RE
from caesar_common.runtime import RUNTIME_KEY


def _stamped(report: dict[str, Any]) -> dict[str, Any]:
    """Reports are computed on read; the timestamp says when (v1 ``timestamp``)."""
    return {**report, "timestamp": utcnow().isoformat()}


async def get_owner_usage(request: web.Request) -> web.Response:
    owner = request.query.get("owner", "")
    if not OWNER_RE.fullmatch(owner):
        return web.json_response({"error": "missing or malformed owner"}, status=400)
    runtime = request.app[RUNTIME_KEY]
    if not runtime.ready:
        return web.json_response({"error": "not ready"}, status=503)
    deps = make_deps(runtime)
    report = owner_report(owner, await deps.jobs.of_owner(owner), await deps.files.of_owner(owner))
    return web.json_response(_stamped(report))


async def get_global_usage(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    if not runtime.ready:
        return web.json_response({"error": "not ready"}, status=503)
    deps = make_deps(runtime)
    report = global_report(await deps.jobs.everyone(), await deps.files.everyone())
    return web.json_response(_stamped(report))


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/usage", get_owner_usage)
    app.router.add_get("/usage/all", get_global_usage)
    return app
