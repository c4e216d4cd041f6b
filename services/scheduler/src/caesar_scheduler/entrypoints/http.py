"""The scheduler's HTTP app: only the operational routes, which the runtime adds.

It exists so every service is started the same way (``run_service(..., app=create_app())``)
and has one obvious place for routes it may serve later (e.g. a queue view).
"""

from __future__ import annotations

from aiohttp import web


def create_app() -> web.Application:
    return web.Application()
