"""Paths of usage figures: v1 ``/accounting`` and ``/appstats``, the v2 usage report."""

from __future__ import annotations

from typing import Any

from caesar_api.entrypoints.routes import V1
from caesar_api.entrypoints.routes.usage import REPORT_FORMATS, USAGE_REPORT
from caesar_api.openapi.components import Schema, ref
from caesar_api.openapi.models import AppStats, UsageReport, UsageV1
from caesar_api.openapi.operations import (
    RETRY_AFTER,
    error,
    json_body,
    limit_error,
    operation,
    problem,
    query_param,
)
from caesar_common.ids import OWNER_RE
from caesar_common.usage_query import DAY_RE, DEFAULT_GROUP_BY, GROUP_BY

TAG = "accounting"
UNAVAILABLE = (
    "The accounting service did not answer within CAESAR_ACCOUNTING_TIMEOUT_S, or is not ready; "
    "retry after Retry-After seconds."
)


def _day(name: str, description: str) -> Schema:
    return query_param(name, description, {"type": "string", "format": "date", "pattern": DAY_RE.pattern})


def usage_paths() -> dict[str, Any]:
    """``/accounting``, ``/appstats`` (v1) and ``/api/v2/accounting/usage``."""
    report_parameters = [
        _day("from", "First day (UTC, YYYY-MM-DD) of submission or upload; default: the beginning."),
        _day("to", "Last day (UTC, YYYY-MM-DD), included; default: up to now."),
        query_param(
            "group_by",
            "One row per user, app or day (default user). Uploads belong to no app.",
            {"type": "string", "enum": list(GROUP_BY), "default": DEFAULT_GROUP_BY},
        ),
        query_param(
            "user",
            "Admins: only this user's usage. Others may name only themselves.",
            {"type": "string", "pattern": OWNER_RE.pattern},
        ),
        query_param(
            "format",
            "json or csv; without it, Accept: text/csv gives CSV.",
            {"type": "string", "enum": list(REPORT_FORMATS)},
        ),
    ]
    return {
        f"{V1}/accounting": {
            "get": operation(
                "getAccounting",
                "The caller's usage (v1 fields)",
                {
                    "200": json_body(UsageV1, "Sizes in bytes, runtimes in seconds."),
                    "503": limit_error(UNAVAILABLE, retry_after=True),
                },
                tag=TAG,
            )
        },
        f"{V1}/appstats": {
            "get": operation(
                "getAppStats",
                "Everyone's usage (admins)",
                {
                    "200": json_body(AppStats, "Sizes in bytes, runtimes in seconds."),
                    "403": error("The caller lacks the admin role."),
                    "503": limit_error(UNAVAILABLE, retry_after=True),
                },
                tag=TAG,
            )
        },
        USAGE_REPORT: {
            "get": operation(
                "getUsageReport",
                "Usage over a date range, by user, app or day",
                {
                    "200": {
                        "description": (
                            "The report. CSV: a header row (the grouping, then the figures of totals), "
                            "one row per group."
                        ),
                        "content": {
                            "application/json": {"schema": ref(UsageReport)},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "400": problem(
                        "A bad date, from after to, an unknown group_by or format, or a bad user."
                    ),
                    "403": problem("user names another user and the caller is not an admin."),
                    "503": {**problem(UNAVAILABLE), "headers": RETRY_AFTER},
                },
                tag=TAG,
                description=(
                    "Jobs count on the day they were submitted, uploads on the day they were uploaded "
                    "(and while stored); each job once, with the outcome its status shows, so a user's "
                    "totals equal their job list. Users see their own usage; admins everyone's."
                ),
                parameters=report_parameters,
            )
        },
    }
