"""The v2 API of apps and job results: ``/api/v2/...``, errors as RFC 9457 problem+json.

* ``GET /api/v2/apps``: every app with its JSON Schema, version, default wall time and
  whether this deployment can run it (container-only apps: ``available: false``);
* ``GET /api/v2/apps/{name}``: one of them (404 for an unknown name);
* ``GET /api/v2/jobs/{job_id}/catalog?format=votable|fits|csv|json|ds9&kind=sources|components``;
* ``GET /api/v2/jobs/{job_id}/preview.png``;
* ``GET /api/v2/jobs/{job_id}/files`` and ``/files/{name}``: the files of the job's
  manifest; a name not in the manifest is a 404, so no client text is used as a path.

Errors are ``application/problem+json`` objects (``type``, ``title``, ``status``,
``detail``); v1 keeps its ``{"status": ...}`` shape. Results of a job that has not ended
answer 409, of a deleted job 410. The jobs themselves are in :mod:`.v2_jobs`, the
uploads in :mod:`.v2_files`.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from caesar_api.adapters.job_files import (
    MANIFEST_NAME,
    catalog_file,
    listed_file,
    preview_file,
)
from caesar_api.auth import is_admin
from caesar_api.dependencies import Dependencies
from caesar_api.domain.apps import app_entry
from caesar_api.domain.errors import ApiError, shown
from caesar_api.entrypoints.routes import V2, Binder
from caesar_api.entrypoints.routes.problems import with_problems
from caesar_api.service.results import JobNotEnded, JobOutputs, job_outputs
from caesar_common.apps import APPS, get_app
from caesar_common.layout import JobManifest

__all__ = ["CATALOG_FORMATS", "CATALOG_KINDS", "add_v2_routes"]

CATALOG_FORMATS: Final[dict[str, tuple[str, str]]] = {
    "votable": ("application/x-votable+xml", "vot"),
    "fits": ("application/fits", "fits"),
    "csv": ("text/csv", "csv"),
    "json": ("application/json", "json"),
    "ds9": ("text/plain", "reg"),
}
"""``?format=`` -> (media type of the answer, file extension of its name)."""
CATALOG_KINDS: Final = ("sources", "components")


async def list_apps(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/apps``: schema, version and availability of every app."""
    runnable = deps.settings.runnable_executors
    return web.json_response({"apps": [app_entry(app, runnable) for app in APPS.values()]})


async def get_app_entry(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/apps/{name}``: one app's schema, version and availability; 404 if unknown."""
    name = request.match_info["name"]
    app = get_app(name)
    if app is None:
        raise ApiError(404, f"Unknown app {shown(name)}; GET {V2}/apps lists them")
    return web.json_response(app_entry(app, deps.settings.runnable_executors))


async def _job_manifest(
    request: web.Request, deps: Dependencies, owner: str
) -> tuple[JobOutputs, JobManifest]:
    """The caller's ended job and its manifest; 409 while it runs, 404 without outputs."""
    try:
        outputs = await job_outputs(
            deps.jobs, deps.settings.jobs_root, owner, request.match_info["job_id"], admin=is_admin(request)
        )
    except JobNotEnded as exc:
        job_id, state = exc.job["_id"], exc.job["state"]
        raise ApiError(
            409, f"Job {job_id} has not ended yet (state={state}); its outputs are not available"
        ) from None
    if outputs.manifest is None:
        raise ApiError(404, f"Job {outputs.job_id} has no outputs (state={outputs.state})")
    return outputs, outputs.manifest


def _manifest_entry(job_dir: Path) -> dict[str, Any]:
    """Size and SHA-256 of the manifest itself (it cannot list its own checksum)."""
    try:
        data = (job_dir / MANIFEST_NAME).read_bytes()
    except OSError:  # removed since it was read: nothing to measure
        return {"name": MANIFEST_NAME, "size_bytes": None, "sha256": None}
    return {"name": MANIFEST_NAME, "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


async def get_catalog(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/catalog``: the harmonised catalogue in one format."""
    fmt = request.query.get("format", "votable")
    kind = request.query.get("kind", "sources")
    if fmt not in CATALOG_FORMATS:
        raise ApiError(400, f"Unknown format; use one of {', '.join(CATALOG_FORMATS)}")
    if kind not in CATALOG_KINDS:
        raise ApiError(400, "Unknown kind; use sources or components")
    outputs, manifest = await _job_manifest(request, deps, owner)
    path = await asyncio.to_thread(catalog_file, outputs.job_dir, manifest, kind, fmt)
    if path is None:
        raise ApiError(404, f"Job {outputs.job_id} has no catalogue (state={outputs.state})")
    media, ext = CATALOG_FORMATS[fmt]
    disposition = f"attachment; filename={outputs.job_id}-{kind}.{ext}"
    return web.FileResponse(path, headers={"Content-Type": media, "Content-Disposition": disposition})


async def get_preview_png(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/preview.png``."""
    outputs, manifest = await _job_manifest(request, deps, owner)
    path = await asyncio.to_thread(preview_file, outputs.job_dir, manifest)
    if path is None:
        raise ApiError(404, f"Job {outputs.job_id} has no preview (state={outputs.state})")
    return web.FileResponse(path, headers={"Content-Type": "image/png"})


async def list_files(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/files``: name, size and SHA-256 of every output.

    Sizes and checksums come from the manifest (``null`` where an older runner did not
    record them); the manifest itself, listed last, is measured here.
    """
    outputs, manifest = await _job_manifest(request, deps, owner)
    files: list[dict[str, Any]] = [
        {"name": f.name, "size_bytes": f.size_bytes, "sha256": f.sha256 or None} for f in manifest.files
    ]
    files.append(await asyncio.to_thread(_manifest_entry, outputs.job_dir))
    return web.json_response({"job_id": outputs.job_id, "files": files})


async def get_file(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/jobs/{job_id}/files/{name}``: one output listed in the manifest."""
    name = request.match_info["name"]
    outputs, manifest = await _job_manifest(request, deps, owner)
    path = await asyncio.to_thread(listed_file, outputs.job_dir, manifest, name)
    if path is None:
        raise ApiError(404, f"Job {outputs.job_id} has no output file with that name")
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
    router.add_get(f"{V2}/apps", bind(with_problems(list_apps)), allow_head=False)
    router.add_get(f"{V2}/apps/{{name}}", bind(with_problems(get_app_entry)), allow_head=False)
    router.add_get(f"{V2}/jobs/{{job_id}}/catalog", bind(with_problems(get_catalog)), allow_head=False)
    router.add_get(
        f"{V2}/jobs/{{job_id}}/preview.png", bind(with_problems(get_preview_png)), allow_head=False
    )
    router.add_get(f"{V2}/jobs/{{job_id}}/files", bind(with_problems(list_files)), allow_head=False)
    router.add_get(f"{V2}/jobs/{{job_id}}/files/{{name:.+}}", bind(with_problems(get_file)), allow_head=False)
