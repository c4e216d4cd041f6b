"""Routes of usage figures, computed by the accounting service and asked for over HTTP.

* ``GET /caesar/api/v1.0/accounting``: the caller's usage, in the old service's fields;
* ``GET /caesar/api/v1.0/appstats``: everyone's (admins only; with authentication off
  the single user ``anonymous`` is the operator);
* ``GET /api/v2/accounting/usage?from=&to=&group_by=user|app|day&user=&format=json|csv``:
  a report over a date range, one row per group. Users see their own usage only; admins
  everyone's, or one user's with ``user=``. JSON, or CSV with ``?format=csv`` or
  ``Accept: text/csv`` (``format`` wins).

Accounting down, slow or not ready: 503 with Retry-After within the configured wait
(``CAESAR_ACCOUNTING_TIMEOUT_S``), never a hung request.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, Final

from aiohttp import web

from caesar_api.adapters.accounting import AccountingUnavailable
from caesar_api.auth import acts_as_admin
from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError
from caesar_api.domain.usage import report_csv, v1_accounting, v1_appstats
from caesar_api.entrypoints.routes import V1, V2, Binder
from caesar_api.entrypoints.routes.problems import with_problems
from caesar_common.usage_query import UsageQuery, UsageQueryError

USAGE_REPORT: Final = f"{V2}/accounting/usage"
REPORT_FORMATS: Final = ("json", "csv")
CSV_TYPE: Final = "text/csv"
RETRY_AFTER_S: Final = 5


async def _ask(call: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Accounting's answer, or a 503 that says what is missing and when to try again."""
    try:
        return await call
    except AccountingUnavailable:
        raise ApiError(
            503,
            "Usage figures are unavailable: the accounting service did not answer in time; retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None


async def get_accounting(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /accounting``: the caller's usage (v1 field names)."""
    return web.json_response(v1_accounting(await _ask(deps.accounting.owner_usage(owner))))


async def get_appstats(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /appstats``: everyone's usage and the number of users (admins only)."""
    if not acts_as_admin(request, deps.settings.auth_enabled):
        raise ApiError(403, "Application statistics are for administrators only")
    return web.json_response(v1_appstats(await _ask(deps.accounting.global_usage())))


def report_format(request: web.Request) -> str:
    """``?format=`` if given (400 if unknown), else CSV when Accept names it before JSON."""
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in REPORT_FORMATS:
            raise ApiError(400, f"format must be one of {', '.join(REPORT_FORMATS)}")
        return fmt
    for media in request.headers.get("Accept", "").split(","):
        kind = media.split(";", 1)[0].strip().lower()
        if kind == CSV_TYPE:
            return "csv"
        if kind == "application/json":
            return "json"
    return "json"


def report_query(request: web.Request, deps: Dependencies, owner: str) -> UsageQuery:
    """The report the caller asked for, narrowed to what they may see.

    A user's report is always their own (``user=`` naming anyone else is a 403); an
    admin's covers everyone unless ``user=`` picks one.
    """
    try:
        query = UsageQuery.parse(request.query, owner_key="user")
    except UsageQueryError as exc:
        raise ApiError(400, str(exc)) from None
    if acts_as_admin(request, deps.settings.auth_enabled):
        return query
    if query.owner not in (None, owner):
        raise ApiError(403, "Only administrators may see other users' usage")
    return replace(query, owner=owner)


async def get_usage_report(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/accounting/usage``: usage over a date range, grouped, as JSON or CSV."""
    query = report_query(request, deps, owner)
    fmt = report_format(request)
    report = await _ask(deps.accounting.usage_report(query))
    if fmt == "csv":
        return web.Response(
            text=report_csv(report),
            content_type=CSV_TYPE,
            headers={"Content-Disposition": f"attachment; filename=usage-by-{query.group_by}.csv"},
        )
    return web.json_response(report)


def add_usage_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register ``/accounting`` and ``/appstats`` (v1) and the v2 usage report."""
    router.add_get(f"{V1}/accounting", bind(get_accounting), allow_head=False)
    router.add_get(f"{V1}/appstats", bind(get_appstats), allow_head=False)
    router.add_get(USAGE_REPORT, bind(with_problems(get_usage_report)), allow_head=False)
