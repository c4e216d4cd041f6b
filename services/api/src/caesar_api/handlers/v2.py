"""The v2 API of apps and job results: ``/api/v2/...``, errors as RFC 9457 problem+json.

* ``GET /api/v2/apps``: every app with its JSON Schema, version, default wall time and
  whether this deployment can run it (container-only apps: ``available: false``);
* ``GET /api/v2/jobs/{job_id}/catalog?format=votable|fits|csv|json|ds9&kind=sources|components``;
* ``GET /api/v2/jobs/{job_id}/preview.png``;
* ``GET /api/v2/jobs/{job_id}/files`` and ``/files/{name}``: the files of the job's
  manifest; a name not in the manifest is a 404, so no client text is used as a path.

Errors are ``application/problem+json`` objects (``type``, ``title``, ``status``,
``detail``); v1 keeps its ``{"status": ...}`` shape.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from caesar_api.adapters.job_files import (
    MANIFEST,
    catalog_file,
    listed_file,
    load_manifest,
    manifest_files,
    preview_file,
)
from caesar_api.auth import is_admin
from caesar_api.domain.errors import ApiError
from caesar_api.handlers.deps import Dependencies
from caesar_api.handlers.jobs import _owned_job
from caesar_common.apps import APPS
from caesar_common.ids import safe_owner
from caesar_common.jobstate import JobState, is_terminal

__all__ = ["V2", "add_v2_routes", "problem"]

V2: Final = "/api/v2"
PROBLEM_TYPE: Final = "application/problem+json"
CATALOG_FORMATS: Final[dict[str, tuple[str, str]]] = {
    "votable": ("application/x-votable+xml", "vot"),
    "fits": ("application/fits", "fits"),
    "csv": ("text/csv", "csv"),
    "json": ("application/json", "json"),
    "ds9": ("text/plain", "reg"),
}
RouteHandler = Callable[[web.Request, Dependencies, str], Awaitable[web.StreamResponse]]
Binder = Callable[[RouteHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]


def problem(status: int, detail: str, **extra: Any) -> web.Response:
    """An RFC 9457 problem details response."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return web.json_response(body, status=status, content_type=PROBLEM_TYPE)


def _problems(handler: RouteHandler) -> RouteHandler:
    """Answer the handler's :class:`ApiError` as problem+json instead of the v1 shape."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
        try:
            return await handler(request, deps, owner)
        except ApiError as exc:
            return problem(exc.http_status, exc.message)

    return wrapped


async def list_apps(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/apps``: schema, version and availability of every app."""
    runnable = frozenset(deps.settings.runnable_executors)
    apps = []
    for app in APPS.values():
        available = bool(app.executors & runnable)
        entry: dict[str, Any] = {
            "name": app.name,
            "version": app.version,
            "description": app.description,
            "executors": sorted(app.executors),
            "available": available,
            "default_wall_time_s": app.default_wall_time_s,
            "container_image": app.container_image,
            "schema": app.json_schema(),
        }
        if not available:
            entry["unavailable_reason"] = (
                f"needs a {'/'.join(sorted(app.executors))} executor, which this deployment does not have"
            )
        apps.append(entry)
    return web.json_response({"apps": apps})


async def _job_manifest(
    request: web.Request, deps: Dependencies, owner: str
) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    job = await _owned_job(deps, owner, request.match_info["job_id"], admin=is_admin(request))
    job_id, state = job["_id"], job["state"]
    if not is_terminal(JobState(state)):
        raise ApiError(409, f"Job {job_id} has not ended yet (state={state}); its outputs are not available")
    job_dir = deps.settings.jobs_root / safe_owner(job["owner"]) / job_id
    manifest = await asyncio.to_thread(load_manifest, job_dir)
    if manifest is None:
        raise ApiError(404, f"Job {job_id} has no outputs (state={state})")
    return job, job_dir, manifest


async def get_catalog(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/catalog``: the harmonised catalogue in one format."""
    fmt = request.query.get("format", "votable")
    kind = request.query.get("kind", "sources")
    if fmt not in CATALOG_FORMATS:
        raise ApiError(400, f"Unknown format; use one of {', '.join(CATALOG_FORMATS)}")
    if kind not in ("sources", "components"):
        raise ApiError(400, "Unknown kind; use sources or components")
    job, job_dir, manifest = await _job_manifest(request, deps, owner)
    path = await asyncio.to_thread(catalog_file, job_dir, manifest, kind, fmt)
    if path is None:
        raise ApiError(404, f"Job {job['_id']} has no catalogue (state={job['state']})")
    media, ext = CATALOG_FORMATS[fmt]
    disposition = f"attachment; filename={job['_id']}-{kind}.{ext}"
    return web.FileResponse(path, headers={"Content-Type": media, "Content-Disposition": disposition})


async def get_preview_png(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/preview.png``."""
    job, job_dir, manifest = await _job_manifest(request, deps, owner)
    path = await asyncio.to_thread(preview_file, job_dir, manifest)
    if path is None:
        raise ApiError(404, f"Job {job['_id']} has no preview (state={job['state']})")
    return web.FileResponse(path, headers={"Content-Type": "image/png"})


async def list_files(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/files``: name, size and SHA-256 of every output."""
    job, _, manifest = await _job_manifest(request, deps, owner)
    files = [
        {"name": f["name"], "size_bytes": f.get("size_bytes"), "sha256": f.get("sha256")}
        for f in manifest_files(manifest)
    ]
    files.append({"name": MANIFEST, "size_bytes": None, "sha256": None})  # the record itself
    return web.json_response({"job_id": job["_id"], "files": files})


async def get_file(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/files/{name}``: one output listed in the manifest."""
    name = request.match_info["name"]
    job, job_dir, manifest = await _job_manifest(request, deps, owner)
    path = await asyncio.to_thread(listed_file, job_dir, manifest, name)
    if path is None:
        raise ApiError(404, f"Job {job['_id']} has no output file with that name")
    filename = Path(name).name.replace('"', "")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


def add_v2_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the v2 routes of this module."""
    router.add_get(f"{V2}/apps", bind(_problems(list_apps)), allow_head=False)
    router.add_get(f"{V2}/jobs/{{job_id}}/catalog", bind(_problems(get_catalog)), allow_head=False)
    router.add_get(f"{V2}/jobs/{{job_id}}/preview.png", bind(_problems(get_preview_png)), allow_head=False)
    router.add_get(f"{V2}/jobs/{{job_id}}/files", bind(_problems(list_files)), allow_head=False)
    router.add_get(f"{V2}/jobs/{{job_id}}/files/{{name:.+}}", bind(_problems(get_file)), allow_head=False)
