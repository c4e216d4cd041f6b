"""The v2 files: ``/api/v2/files`` (upload, list) and ``/api/v2/files/{file_id}`` (get, content, delete).

The upload is v1's (:func:`~caesar_api.entrypoints.routes.files.receive_upload`: the same
streaming, limits, quotas and FITS checks), answered as a v2 ``file`` with 201 and its
``Location``; another user's file is the same 404 as none.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from caesar_api.auth import is_admin
from caesar_api.dependencies import Dependencies
from caesar_api.domain.files import display_name
from caesar_api.domain.responses import file_v2
from caesar_api.entrypoints.routes import V2, Binder
from caesar_api.entrypoints.routes.files import CONTENT_TYPES, receive_upload
from caesar_api.entrypoints.routes.paging import page_params
from caesar_api.entrypoints.routes.v2_support import list_response, v2_route
from caesar_api.service import files as file_cases
from caesar_common.ids import is_file_id

__all__ = ["add_v2_file_routes", "content_disposition"]


def content_disposition(filename: str) -> str:
    """``attachment`` with the original name: plain ASCII in ``filename``, UTF-8 in ``filename*``."""
    name = display_name(filename) or "file"
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    if ascii_name == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


async def upload(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``POST /api/v2/files``: multipart ``file`` (and ``tag``); 201 with the new ``file``."""
    record = await receive_upload(request, deps, owner)
    body = file_v2(record)
    return web.json_response(body, status=201, headers={"Location": body["links"]["self"]})


async def list_files(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/files``: the caller's live files, newest first, cursor paginated."""
    limit, after_id = page_params(request.query, deps.settings, is_file_id)
    page = await file_cases.list_page(deps.files, owner, limit, after_id)
    return list_response(request, page, limit, file_v2)


async def get_file(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/files/{file_id}``."""
    record = await file_cases.owned_file(
        deps.files, owner, request.match_info["file_id"], admin=is_admin(request)
    )
    return web.json_response(file_v2(record))


async def get_content(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /api/v2/files/{file_id}/content``: the bytes, named as uploaded."""
    record, path = await file_cases.stored_file(
        deps.files, deps.storage, owner, request.match_info["file_id"], admin=is_admin(request)
    )
    return web.FileResponse(
        path,
        headers={
            "Content-Disposition": content_disposition(str(record.get("filename_orig") or "")),
            "Content-Type": CONTENT_TYPES.get(record["ext"], "application/octet-stream"),
        },
    )


async def delete_file(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``DELETE /api/v2/files/{file_id}``: 204; the record stays, marked, with its ``FileDeleted``."""
    await file_cases.delete(
        deps.files, deps.storage, owner, request.match_info["file_id"], admin=is_admin(request)
    )
    return web.Response(status=204)


def add_v2_file_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the v2 file routes."""
    router.add_post(f"{V2}/files", bind(v2_route(upload)))
    router.add_get(f"{V2}/files", bind(v2_route(list_files)), allow_head=False)
    router.add_get(f"{V2}/files/{{file_id}}", bind(v2_route(get_file)), allow_head=False)
    router.add_get(f"{V2}/files/{{file_id}}/content", bind(v2_route(get_content)), allow_head=False)
    router.add_delete(f"{V2}/files/{{file_id}}", bind(v2_route(delete_file)))
