"""The monitor's read API: ``GET /jobs/{job_id}/timeline`` (proxied by the api).

Internal: it answers for any job, so only the api (which checks ownership) should reach
it. The operational routes (/healthz, /readyz, /metrics) are added by the runtime.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from caesar_common.ids import is_job_id
from caesar_common.runtime import RUNTIME_KEY
from caesar_monitor.bootstrap import timeline_repository
from caesar_monitor.domain.timeline import ordered


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def get_timeline(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    if not is_job_id(job_id):
        return web.json_response({"error": "malformed job id"}, status=400)
    runtime = request.app[RUNTIME_KEY]
    if not runtime.ready:
        return web.json_response({"error": "not ready"}, status=503)
    entries = await timeline_repository(runtime).entries(job_id)
    if entries is None:
        return web.json_response({"error": "unknown job"}, status=404)
    body = [{k: _json_value(v) for k, v in entry.items()} for entry in ordered(entries)]
    return web.json_response(body)


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/jobs/{job_id}/timeline", get_timeline)
    return app
