"""v1 routes of a job's catalogue and preview (the old service's ``/job/<id>/sources`` family).

``/sources`` and ``/source-components`` answer the harmonised catalogue as JSON,
``/output-sources`` and ``/output-components`` the CSV file, ``/preview`` the PNG in
base64 (``{"image": ..., "status": ""}``) and ``/output-plot`` the PNG itself. Like
``/output``: 202 while the job runs, 404 when it ended without that output (failed or
aborted jobs have no catalogue). Only files listed in the job's manifest are served, or
formats its catalogue record derives from a listed canonical catalogue: the JSON and
CSV of a job are made on the first request and cached (see
:mod:`caesar_api.adapters.job_files`), so the first answer may take a little longer.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from aiohttp import web

from caesar_api.adapters.job_files import catalog_file, preview_file
from caesar_api.auth import is_admin
from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError
from caesar_api.entrypoints.routes import V1, Binder
from caesar_api.entrypoints.routes.jobs import not_ended
from caesar_api.service.results import JobNotEnded, JobOutputs, job_outputs
from caesar_common.layout import JobManifest

__all__ = ["add_v1_result_routes"]


async def _finished(
    request: web.Request, deps: Dependencies, owner: str
) -> tuple[JobOutputs, JobManifest] | web.Response:
    """The job's outputs with a manifest; or the 202 answer while it has not ended."""
    try:
        outputs = await job_outputs(
            deps.jobs, deps.settings.jobs_root, owner, request.match_info["job_id"], admin=is_admin(request)
        )
    except JobNotEnded as exc:
        return not_ended(exc)
    if outputs.manifest is None:
        raise ApiError(404, f"Output of job {outputs.job_id} not found (state={outputs.state})!")
    return outputs, outputs.manifest


async def _catalog_path(
    request: web.Request, deps: Dependencies, owner: str, kind: str, fmt: str
) -> Path | web.Response:
    found = await _finished(request, deps, owner)
    if isinstance(found, web.Response):
        return found
    outputs, manifest = found
    path = await asyncio.to_thread(catalog_file, outputs.job_dir, manifest, kind, fmt)
    if path is None:
        raise ApiError(404, f"No catalogue for job {outputs.job_id} (state={outputs.state})!")
    return path


async def _catalog_json(
    request: web.Request, deps: Dependencies, owner: str, kind: str
) -> web.StreamResponse:
    path = await _catalog_path(request, deps, owner, kind, "json")
    if isinstance(path, web.Response):
        return path
    body = await asyncio.to_thread(path.read_bytes)
    return web.Response(body=body, content_type="application/json")


async def _catalog_csv(request: web.Request, deps: Dependencies, owner: str, kind: str) -> web.StreamResponse:
    path = await _catalog_path(request, deps, owner, kind, "csv")
    if isinstance(path, web.Response):
        return path
    job_id = request.match_info["job_id"]
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "text/csv",
            "Content-Disposition": f"attachment; filename={job_id}-{kind}.csv",
        },
    )


async def get_sources(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /job/<id>/sources``: the harmonised source catalogue as JSON."""
    return await _catalog_json(request, deps, owner, "sources")


async def get_source_components(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /job/<id>/source-components``: the component catalogue as JSON."""
    return await _catalog_json(request, deps, owner, "components")


async def get_output_sources(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /job/<id>/output-sources``: the source catalogue file (CSV)."""
    return await _catalog_csv(request, deps, owner, "sources")


async def get_output_components(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /job/<id>/output-components``: the component catalogue file (CSV)."""
    return await _catalog_csv(request, deps, owner, "components")


async def _preview_path(request: web.Request, deps: Dependencies, owner: str) -> Path | web.Response:
    found = await _finished(request, deps, owner)
    if isinstance(found, web.Response):
        return found
    outputs, manifest = found
    path = await asyncio.to_thread(preview_file, outputs.job_dir, manifest)
    if path is None:
        raise ApiError(404, f"No preview for job {outputs.job_id} (state={outputs.state})!")
    return path


async def get_preview(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /job/<id>/preview``: ``{"image": "<base64 png>", "status": ""}``."""
    path = await _preview_path(request, deps, owner)
    if isinstance(path, web.Response):
        return path
    data = await asyncio.to_thread(path.read_bytes)
    return web.json_response({"image": base64.b64encode(data).decode("ascii"), "status": ""})


async def get_output_plot(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /job/<id>/output-plot``: the preview PNG."""
    path = await _preview_path(request, deps, owner)
    if isinstance(path, web.Response):
        return path
    return web.FileResponse(path, headers={"Content-Type": "image/png"})


def add_v1_result_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the six v1 catalogue/preview routes (GET only, like ``/output``)."""
    for suffix, handler in (
        ("sources", get_sources),
        ("output-sources", get_output_sources),
        ("source-components", get_source_components),
        ("output-components", get_output_components),
        ("preview", get_preview),
        ("output-plot", get_output_plot),
    ):
        router.add_get(f"{V1}/job/{{job_id}}/{suffix}", bind(handler), allow_head=False)
