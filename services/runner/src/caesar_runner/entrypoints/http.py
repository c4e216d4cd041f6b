"""The runner's HTTP side: only the operational routes (/healthz, /readyz, /metrics)."""

from __future__ import annotations

from aiohttp import web


def create_app() -> web.Application:
    """An application the runtime adds its operational routes to; the runner has no API."""
    return web.Application()
