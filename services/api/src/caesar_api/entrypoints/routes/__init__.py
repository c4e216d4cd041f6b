"""The HTTP routes: one plain async function per route, grouped by resource.

A route parses the request, calls a use case of :mod:`caesar_api.service` and renders
its result; it takes the request, the :class:`~caesar_api.dependencies.Dependencies` and
the caller's owner id, and ``entrypoints/http.py`` does the wiring. Errors are raised as
:class:`~caesar_api.domain.errors.ApiError` and formatted in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from caesar_api.dependencies import Dependencies

RouteHandler = Callable[[web.Request, Dependencies, str], Awaitable[web.StreamResponse]]
"""``route(request, deps, owner)``."""
Binder = Callable[[RouteHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]
"""Turns a :data:`RouteHandler` into an aiohttp handler (see ``entrypoints/http.py``)."""
V1 = "/caesar/api/v1.0"
V2 = "/api/v2"
