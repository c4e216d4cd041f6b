"""Routes of uploaded files: upload, list, download, delete."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from caesar_api.adapters.fits import FITS_SIGNATURE, NOT_FITS_START, NotFitsError, read_fits_facts
from caesar_api.adapters.storage import UploadInProgress
from caesar_api.auth import AuthError, is_admin
from caesar_api.auth.identity import TOKEN_CHECK_KEY, TokenCheck
from caesar_api.auth.tokens import MAX_TOKEN_CHARS
from caesar_api.domain.errors import ApiError, shown
from caesar_api.domain.files import display_name, upload_extension
from caesar_api.domain.jobs import TAG_MAX
from caesar_api.domain.responses import file_record, stored_now, upload_response
from caesar_api.handlers.deps import Dependencies
from caesar_api.handlers.paging import next_link, page_params
from caesar_common.events import FileUploaded
from caesar_common.ids import is_file_id, new_file_id
from caesar_common.logging import get_logger

log = get_logger(__name__)

V1_PREFIX = "/caesar/api/v1.0"
# Multipart framing and small text fields around the file part.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024
CONTENT_TYPES = {
    "fits": "application/fits",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
}


def file_not_found(file_id: str) -> ApiError:
    """The v1 404: the same answer for an unknown id, a bad id and another user's file."""
    return ApiError(404, f"File with uuid {shown(file_id)} not found on the system!")


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"File too large: the limit is {limit} bytes")


# Write errors that mean "no room": 507 Insufficient Storage, so clients know to retry later.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Turn a full disk or quota (or a file-size limit) into 507 instead of a bare 500.

    The partial file is already gone when this runs: the code inside discards it on
    any exception. Other write errors stay 500 (logged by the error middleware).
    """
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            log.error("upload refused: no space for it", error=errno.errorcode.get(exc.errno or 0, "?"))
            raise ApiError(507, "Insufficient storage: the upload could not be stored; retry later") from None
        raise


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
    """``POST /upload``: stream, hash, check and record one file (all or nothing).

    The file is written under a temporary name while SHA-256 and size are computed;
    a ``.fits`` is checked to be a real FITS image and its header facts are read; only
    then is the file renamed into place and recorded with its ``FileUploaded`` event.
    Any failure (client gone, too large, not FITS, database error) removes the file and
    stores nothing.
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
    with _storage_errors():
        received = await _receive(reader, deps, owner, token_check)
    owner = received.owner
    upload = received.upload
    if upload is None:
        raise ApiError(400, "Missing file field in request!")
    file_id, ext, filename, tag = received.file_id, received.ext, received.filename, received.tag
    try:
        fits_facts: dict[str, Any] | None = None
        if ext == "fits":
            try:
                fits_facts = await read_fits_facts(upload.temp)
            except NotFitsError as exc:
                raise ApiError(400, f"Invalid FITS file {shown(filename)}: {exc}") from None
        with _storage_errors():
            await upload.commit(deps.storage.path_of(owner, file_id, ext))
    except BaseException:
        await upload.discard()
        raise

    now = stored_now()
    record = {
        "_id": file_id,
        "owner": owner,
        "filename_orig": filename,
        "ext": ext,
        "size_bytes": upload.size,
        "sha256": received.sha256,
        "tag": tag,
        "uploaded_at": now,
        "fits": fits_facts,
        "deleted": False,
    }
    event = FileUploaded(
        file_id=file_id,
        owner=owner,
        filename=filename,
        ext=ext,
        size_bytes=upload.size,
        sha256=received.sha256,
        tag=tag,
        uploaded_at=now,
    )
    try:
        await deps.files.add(record, event)
    except BaseException:
        await asyncio.shield(deps.storage.remove(owner, file_id, ext))
        raise
    deps.relay.kick(deps.files.collection, file_id)
    log.info("file uploaded", file_id=file_id, owner=owner, size_bytes=upload.size, ext=ext)
    return web.json_response(upload_response(record))


async def list_files(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET /fileids``: the caller's files, newest first, one page (``?limit=&after=``)."""
    limit, after_id = page_params(request.query, deps.settings, is_file_id)
    after = None
    if after_id is not None:
        after = await deps.files.collection.find_one({"_id": after_id, "owner": owner})
        if after is None:
            raise ApiError(400, f"Invalid after cursor {after_id}!")
    page = await deps.files.list(owner, limit, after)
    body = {
        "file_ids": [f["_id"] for f in page.items],
        "files": [file_record(f) for f in page.items],
    }
    headers = {}
    if page.more:
        headers["Link"] = next_link(request.url, limit, page.items[-1]["_id"])
    return web.json_response(body, headers=headers)


async def _owned_file(deps: Dependencies, owner: str, file_id: str, *, admin: bool = False) -> dict[str, Any]:
    """The caller's live file (anyone's for an admin); the id is checked before any lookup.

    Another user's file gives the very same 404 as an unknown id, so ids cannot be probed.
    """
    if not is_file_id(file_id):
        raise file_not_found(file_id)
    record = await (deps.files.get_any(file_id) if admin else deps.files.get(owner, file_id))
    if record is None:
        raise file_not_found(file_id)
    return record


async def download_file(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET|POST /download/<file_id>``: the stored file as an attachment."""
    file_id = request.match_info["file_id"]
    record = await _owned_file(deps, owner, file_id, admin=is_admin(request))
    path = deps.storage.path_of(record["owner"], file_id, record["ext"])
    if not await asyncio.to_thread(path.is_file):
        log.error("file record without its file", file_id=file_id, owner=owner)
        raise file_not_found(file_id)
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
        form = await request.post()
        value = form.get("uuid")
    else:
        value = request.query.get("uuid")
    if not isinstance(value, str) or not value:
        raise ApiError(400, "Missing uuid field in request!")
    if not is_file_id(value):
        raise file_not_found(value)
    raise web.HTTPFound(f"{V1_PREFIX}/download/{value}")


async def delete_file(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``GET|POST /delete/<file_id>``: mark the record deleted (with ``FileDeleted``), remove the file.

    The record is marked, not removed: the event leaves through its outbox, and a file
    id is never reused.
    """
    file_id = request.match_info["file_id"]
    record = await _owned_file(deps, owner, file_id, admin=is_admin(request))
    if not await deps.files.mark_deleted(record):
        raise file_not_found(file_id)
    deps.relay.kick(deps.files.collection, file_id)
    await deps.storage.remove(record["owner"], file_id, record["ext"])
    log.info("file deleted", file_id=file_id, owner=owner)
    return web.json_response({"status": "File deleted and removed from DB"})
