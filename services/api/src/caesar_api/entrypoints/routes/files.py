"""Routes of uploaded files: upload, list, download, delete."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from caesar_api.adapters.fits import FITS_SIGNATURE, NOT_FITS_START
from caesar_api.adapters.storage import UploadInProgress
from caesar_api.auth import AuthError, is_admin
from caesar_api.auth.identity import TOKEN_CHECK_KEY, TokenCheck
from caesar_api.auth.tokens import MAX_TOKEN_CHARS
from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError
from caesar_api.domain.files import display_name, upload_extension
from caesar_api.domain.jobs import TAG_MAX
from caesar_api.domain.responses import file_record, upload_response
from caesar_api.entrypoints.routes import V1, Binder
from caesar_api.entrypoints.routes.paging import next_link, page_params
from caesar_api.service import files as file_cases
from caesar_api.service.files import ReceivedUpload, file_not_found, storage_errors
from caesar_common.ids import is_file_id, new_file_id

# Multipart framing and small text fields around the file part.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024
CONTENT_TYPES = {
    "fits": "application/fits",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
}


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"File too large: the limit is {limit} bytes")


async def _read_tag(part: BodyPartReader) -> str:
    """A small text field, read with a cap so it cannot fill memory."""
    data = bytearray()
    while chunk := await part.read_chunk(4096):
        data += chunk
        if len(data) > TAG_MAX * 4:
            raise ApiError(400, f"Invalid tag: longer than {TAG_MAX} characters!")
    try:
        tag = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "Invalid tag: not UTF-8 text!") from None
    if len(tag) > TAG_MAX:
        raise ApiError(400, f"Invalid tag: longer than {TAG_MAX} characters!")
    return tag


async def _read_token(part: BodyPartReader) -> str:
    """The v1 ``access_token`` form part, read with a cap (a token is a few KB)."""
    data = bytearray()
    while chunk := await part.read_chunk(4096):
        data += chunk
        if len(data) > MAX_TOKEN_CHARS:
            raise AuthError("Invalid token: too long")
    return data.decode("ascii", errors="replace").strip()


async def _next_part(reader: MultipartReader) -> BodyPartReader | MultipartReader | None:
    """The next part of a multipart body; 400 for a malformed one."""
    try:
        return await reader.next()
    except (ValueError, HttpProcessingError):
        # HttpProcessingError: e.g. a part header line longer than aiohttp accepts.
        raise ApiError(400, "Invalid request data: malformed multipart body!") from None


@dataclass
class _Received:
    """What the multipart body held: the file (streamed to a temporary file) and the tag."""

    owner: str = ""
    tag: str = ""
    filename: str = ""
    ext: str = ""
    file_id: str = ""
    sha256: str = ""
    upload: UploadInProgress | None = None


async def _stream_part(
    part: BodyPartReader, upload: UploadInProgress, ext: str, limit: int, chunk_bytes: int
) -> str:
    """Stream the file part into ``upload``; return its SHA-256.

    A ``.fits`` that does not start like one is refused at its first bytes, not after
    gigabytes were written.
    """
    head: bytes | None = b"" if ext == "fits" else None
    while chunk := await part.read_chunk(chunk_bytes):
        if upload.size + len(chunk) > limit:
            raise too_large(limit)
        if head is not None:
            head += chunk[: len(FITS_SIGNATURE)]
            if len(head) >= len(FITS_SIGNATURE):
                if not head.startswith(FITS_SIGNATURE):
                    raise ApiError(400, NOT_FITS_START)
                head = None
        await upload.write(chunk)
    return await upload.finish()


async def _receive(
    reader: MultipartReader, deps: Dependencies, owner: str, token_check: TokenCheck | None = None
) -> _Received:
    """Read every part; the first ``file`` part goes to disk, later ones are skipped.

    Reading on to the closing boundary is what proves the file complete: a body that
    ends early makes the reader raise, and the temporary file is dropped. With auth on
    and no Authorization header (``owner`` empty), an ``access_token`` part must come
    before the file: nothing is written for a caller we do not know.
    """
    settings = deps.settings
    received = _Received(owner=owner)
    try:
        while (part := await _next_part(reader)) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "Invalid request data: nested multipart is not accepted!")
            if part.name == "access_token" and token_check is not None and not received.owner:
                received.owner = (await token_check(await _read_token(part))).owner
            elif part.name == "tag":
                received.tag = await _read_tag(part)
            elif part.name == "file" and received.upload is None:
                if not received.owner:
                    raise AuthError("Missing bearer token")
                owner = received.owner
                received.filename = display_name(part.filename or "")
                received.ext = upload_extension(received.filename, settings.allowed_formats)
                received.file_id = new_file_id()
                received.upload = await deps.storage.begin(owner, received.file_id)
                received.sha256 = await _stream_part(
                    part,
                    received.upload,
                    received.ext,
                    settings.max_upload_bytes,
                    settings.upload_chunk_bytes,
                )
            else:
                await part.release()
    except BaseException:
        if received.upload is not None:
            await received.upload.discard()
        raise
    if not received.owner:
        raise AuthError("Missing bearer token")
    return received


async def upload_file(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``POST /upload``: stream the file part to disk, then have :func:`file_cases.upload` keep it.

    The file is written under a temporary name while SHA-256 and size are computed;
    the use case checks it and records it with its ``FileUploaded`` event. Any failure
    (client gone, too large, not FITS, database error) removes the file and stores
    nothing.
    """
    limit = deps.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + MULTIPART_OVERHEAD_BYTES:
        raise too_large(limit)
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "Missing file field in request! (expected multipart/form-data)")
    try:
        reader = await request.multipart()
    except (KeyError, ValueError):
        raise ApiError(400, "Invalid request data: malformed multipart body!") from None
    token_check = None if owner else request.get(TOKEN_CHECK_KEY)
    with storage_errors():
        received = await _receive(reader, deps, owner, token_check)
    if received.upload is None:
        raise ApiError(400, "Missing file field in request!")
    record = await file_cases.upload(
        ReceivedUpload(
            owner=received.owner,
            file_id=received.file_id,
            filename=received.filename,
            ext=received.ext,
            tag=received.tag,
            sha256=received.sha256,
            pending=received.upload,
        ),
        files=deps.files,
        space=deps.storage,
    )
    return web.json_response(upload_response(record))


async def list_files(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /fileids``: the caller's files, newest first, one page (``?limit=&after=``)."""
    limit, after_id = page_params(request.query, deps.settings, is_file_id)
    page = await file_cases.list_page(deps.files, owner, limit, after_id)
    body = {
        "file_ids": [f["_id"] for f in page.items],
        "files": [file_record(f) for f in page.items],
    }
    headers = {}
    if page.more:
        headers["Link"] = next_link(request.url, limit, page.items[-1]["_id"])
    return web.json_response(body, headers=headers)


async def download_file(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET|POST /download/<file_id>``: the stored file as an attachment."""
    file_id = request.match_info["file_id"]
    record, path = await file_cases.stored_file(
        deps.files, deps.storage, owner, file_id, admin=is_admin(request)
    )
    return web.FileResponse(
        path,
        headers={
            "Content-Disposition": f"attachment; filename={file_id}.{record['ext']}",
            "Content-Type": CONTENT_TYPES.get(record["ext"], "application/octet-stream"),
        },
    )


async def download_redirect(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /download?uuid=`` or ``POST /download`` (form ``uuid``): 302 to the path form."""
    if request.method == "POST":
        try:
            form = await request.post()
        except (ValueError, AssertionError, HttpProcessingError):
            # e.g. multipart/form-data without a boundary: aiohttp cannot even split it.
            raise ApiError(400, "Invalid request data: malformed form body!") from None
        value = form.get("uuid")
    else:
        value = request.query.get("uuid")
    if not isinstance(value, str) or not value:
        raise ApiError(400, "Missing uuid field in request!")
    if not is_file_id(value):
        raise file_not_found(value)
    raise web.HTTPFound(f"{V1}/download/{value}")


async def delete_file(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET|POST /delete/<file_id>``: delete one of the caller's files."""
    await file_cases.delete(
        deps.files, deps.storage, owner, request.match_info["file_id"], admin=is_admin(request)
    )
    return web.json_response({"status": file_cases.FILE_DELETED})


def add_file_routes(router: web.UrlDispatcher, bind: Binder) -> None:
    """Register the v1 file routes (GET and POST where the old service had both)."""
    router.add_post(f"{V1}/upload", bind(upload_file))
    router.add_get(f"{V1}/fileids", bind(list_files), allow_head=False)
    router.add_get(f"{V1}/download/{{file_id}}", bind(download_file), allow_head=False)
    router.add_post(f"{V1}/download/{{file_id}}", bind(download_file))
    router.add_get(f"{V1}/download", bind(download_redirect), allow_head=False)
    router.add_post(f"{V1}/download", bind(download_redirect))
    router.add_get(f"{V1}/delete/{{file_id}}", bind(delete_file), allow_head=False)
    router.add_post(f"{V1}/delete/{{file_id}}", bind(delete_file))
