"""What the v2 app catalogue says about each app (pure).

Availability is a fact of the deployment, not of the app: an app is runnable only where
one of its executor kinds is configured, and the reason is spelt out for clients.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from caesar_common.apps.base import App


def unavailable_reason(app: App, runnable_executors: Collection[str]) -> str | None:
    """Why this deployment cannot run ``app``, or ``None`` when it can."""
    if app.executors & frozenset(runnable_executors):
        return None
    kinds = "/".join(sorted(app.executors))
    return f"needs a {kinds} executor, which this deployment does not have"


def app_entry(app: App, runnable_executors: Collection[str]) -> dict[str, Any]:
    """One entry of ``GET /api/v2/apps``: schema, version, resources and availability."""
    reason = unavailable_reason(app, runnable_executors)
    entry: dict[str, Any] = {
        "name": app.name,
        "version": app.version,
        "description": app.description,
        "executors": sorted(app.executors),
        "available": reason is None,
        "default_wall_time_s": app.default_wall_time_s,
        "container_image": app.container_image,
        "schema": app.json_schema(),
    }
    if reason is not None:
        entry["unavailable_reason"] = reason
    return entry
