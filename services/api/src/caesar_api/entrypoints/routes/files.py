"""Routes of uploaded files: upload, list, download, delete."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from caesar_api.adapters.fits import FITS_SIGNATURE, NOT_FITS_START, read_fits_facts
from caesar_api.adapters.storage import UploadInProgress
from caesar_api.auth import AuthError, identity_of, is_admin
from caesar_api.auth.identity import TOKEN_CHECK_KEY, TokenCheck
from caesar_api.auth.tokens import MAX_TOKEN_CHARS
from caesar_api.dependencies import Dependencies
from caesar_api.domain.errors import ApiError
from caesar_api.domain.files import display_name, upload_extension
from caesar_api.domain.jobs import TAG_MAX
from caesar_api.domain.quota import Quota, Usage, bytes_quota_exceeded
from caesar_api.domain.responses import file_record, upload_response
from caesar_api.entrypoints.limits import BodyPace, read_within
from caesar_api.entrypoints.routes import V1, Binder
from caesar_api.entrypoints.routes.paging import next_link, page_params
from caesar_api.entrypoints.routes.streamed_lists import STREAM_BATCH, stream_two_arrays
from caesar_api.service import files as file_cases
from caesar_api.service.files import ReceivedUpload, file_not_found, storage_errors
from caesar_api.settings import ApiSettings
from caesar_common.ids import is_file_id, new_file_id
from caesar_common.quotas import QuotaPolicy
from caesar_common.store import Document

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


async def _read_small(part: BodyPartReader, cap: int, pace: BodyPace, too_long: Exception) -> bytearray:
    """A small text part, read with a cap so it cannot fill memory, at the body's pace."""
    data = bytearray()
    while True:
        async with pace.read():
            chunk = await part.read_chunk(4096)
        if not chunk:
            return data
        pace.add(len(chunk))
        data += chunk
        if len(data) > cap:
            raise too_long


async def _skip(part: BodyPartReader, pace: BodyPace, chunk_bytes: int) -> None:
    """Read past a part nobody needs, at the body's pace (a junk part cannot stall it)."""
    while True:
        async with pace.read():
            chunk = await part.read_chunk(chunk_bytes)
        if not chunk:
            return
        pace.add(len(chunk))


async def _read_tag(part: BodyPartReader, pace: BodyPace) -> str:
    data = await _read_small(
        part, TAG_MAX * 4, pace, ApiError(400, f"Invalid tag: longer than {TAG_MAX} characters!")
    )
    try:
        tag = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "Invalid tag: not UTF-8 text!") from None
    if len(tag) > TAG_MAX:
        raise ApiError(400, f"Invalid tag: longer than {TAG_MAX} characters!")
    return tag


async def _read_token(part: BodyPartReader, pace: BodyPace) -> str:
    """The v1 ``access_token`` form part (a token is a few KB)."""
    data = await _read_small(part, MAX_TOKEN_CHARS, pace, AuthError("Invalid token: too long"))
    return data.decode("ascii", errors="replace").strip()


async def _next_part(reader: MultipartReader, pace: BodyPace) -> BodyPartReader | MultipartReader | None:
    """The next part of a multipart body; 400 for a malformed one."""
    try:
        async with pace.read():
            return await reader.next()
    except (ValueError, HttpProcessingError):
        # HttpProcessingError: e.g. a part header line longer than aiohttp accepts.
        raise ApiError(400, "Invalid request data: malformed multipart body!") from None


@dataclass
class _Received:
    """What the multipart body held: the file (streamed to a temporary file) and the tag."""

    owner: str = ""
    roles: frozenset[str] = frozenset()
    quota: Quota = field(default_factory=Quota)
    tag: str = ""
    filename: str = ""
    ext: str = ""
    file_id: str = ""
    sha256: str = ""
    upload: UploadInProgress | None = None
    owner_lock: asyncio.Lock | None = None


@dataclass(frozen=True)
class _Cap:
    """The most bytes the file part may have, and the error once it has more."""

    limit: int
    exceeded: Callable[[], ApiError]


def _cap(settings: ApiSettings, quota: Quota, usage: Usage | None) -> _Cap:
    """The upload size limit, or the owner's quota when it leaves less (507, not 413)."""
    limit = settings.max_upload_bytes
    left = None if usage is None else quota.bytes_left(usage)
    if usage is not None and left is not None and left < limit:
        used = usage.bytes
        return _Cap(left, lambda: bytes_quota_exceeded(used, quota.max_bytes))
    return _Cap(limit, lambda: too_large(limit))


async def _stream_part(
    part: BodyPartReader, upload: UploadInProgress, ext: str, cap: _Cap, chunk_bytes: int, pace: BodyPace
) -> str:
    """Stream the file part into ``upload``; return its SHA-256.

    A ``.fits`` that does not start like one is refused at its first bytes, and a file
    beyond its cap as soon as it outgrows it, not after gigabytes were written. Every read
    keeps the body's pace (:class:`BodyPace`).
    """
    head: bytes | None = b"" if ext == "fits" else None
    while True:
        async with pace.read():
            chunk = await part.read_chunk(chunk_bytes)
        if not chunk:
            break
        if upload.size + len(chunk) > cap.limit:
            raise cap.exceeded()
        pace.add(len(chunk))
        if head is not None:
            head += chunk[: len(FITS_SIGNATURE)]
            if len(head) >= len(FITS_SIGNATURE):
                if not head.startswith(FITS_SIGNATURE):
                    raise ApiError(400, NOT_FITS_START)
                head = None
        await upload.write(chunk)
    return await upload.finish()


async def _receive(
    reader: MultipartReader,
    deps: Dependencies,
    owner: str,
    roles: frozenset[str],
    slots: AsyncExitStack,
    token_check: TokenCheck | None = None,
) -> _Received:
    """Read every part; the first ``file`` part goes to disk, later ones are skipped.

    Reading on to the closing boundary is what proves the file complete: a body that
    ends early makes the reader raise, and the temporary file is dropped. With auth on
    and no Authorization header (``owner`` empty), an ``access_token`` part must come
    before the file: nothing is written for a caller we do not know. Before the file's
    first byte is stored the owner gets an upload slot (in ``slots``, held until the
    upload is kept or dropped; 429 when all are taken) and the quota is checked.
    """
    settings = deps.settings
    pace = BodyPace(settings.http_body_timeout_s, settings.upload_min_bytes_per_s)
    received = _Received(owner=owner, roles=roles)
    try:
        while (part := await _next_part(reader, pace)) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "Invalid request data: nested multipart is not accepted!")
            if part.name == "access_token" and token_check is not None and not received.owner:
                identity = await token_check(await _read_token(part, pace))
                received.owner, received.roles = identity.owner, identity.roles
            elif part.name == "tag":
                received.tag = await _read_tag(part, pace)
            elif part.name == "file" and received.upload is None:
                if not received.owner:
                    raise AuthError("Missing bearer token")
                owner = received.owner
                received.filename = display_name(part.filename or "")
                received.ext = upload_extension(received.filename, settings.allowed_formats)
                received.owner_lock = await slots.enter_async_context(deps.uploads.slot(owner))
                quota = received.quota = quota_of(settings, deps.quotas, owner, received.roles)
                cap = _cap(settings, quota, await file_cases.admit(deps.files, owner, quota))
                received.file_id = new_file_id()
                received.upload = await deps.storage.begin(owner, received.file_id)
                received.sha256 = await _stream_part(
                    part, received.upload, received.ext, cap, settings.upload_chunk_bytes, pace
                )
            else:
                await _skip(part, pace, settings.upload_chunk_bytes)
    except BaseException:
        if received.upload is not None:
            await received.upload.discard()
        raise
    if not received.owner:
        raise AuthError("Missing bearer token")
    return received


def quota_of(settings: ApiSettings, policy: QuotaPolicy, owner: str, roles: Collection[str]) -> Quota:
    """The user's storage limits: the quota policy's ``stored_bytes`` for them (their own
    entry, their roles, the default), else ``CAESAR_USER_QUOTA_BYTES``."""
    stored = policy.limits_for(owner, roles).stored_bytes
    max_bytes = stored if stored is not None else settings.user_quota_bytes
    return Quota(max_bytes=max_bytes, max_files=settings.user_quota_files)


async def receive_upload(request: web.Request, deps: Dependencies, owner: str) -> Document:
    """Stream a multipart upload's file part to disk and have :func:`file_cases.upload` keep it.

    Shared by v1 ``POST /upload`` and v2 ``POST /api/v2/files``, which differ only in how
    they answer. The file is written under a temporary name while SHA-256 and size are
    computed; the use case checks it and records it with its ``FileUploaded`` event. Any
    failure (client gone or too slow, too large, over quota, not FITS, database error)
    removes the file and stores nothing. Returns the stored record.
    """
    settings = deps.settings
    limit = settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + MULTIPART_OVERHEAD_BYTES:
        raise too_large(limit)
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "Missing file field in request! (expected multipart/form-data)")
    try:
        reader = await request.multipart()
    except (KeyError, ValueError):
        raise ApiError(400, "Invalid request data: malformed multipart body!") from None
    token_check = None if owner else request.get(TOKEN_CHECK_KEY)
    async with AsyncExitStack() as slots:
        with storage_errors():
            received = await _receive(reader, deps, owner, identity_of(request).roles, slots, token_check)
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
            read_facts=functools.partial(
                read_fits_facts, max_decompressed_bytes=settings.max_decompressed_bytes
            ),
            quota=received.quota,
            owner_lock=received.owner_lock,
        )
    return record


async def upload_file(request: web.Request, deps: Dependencies, owner: str) -> web.Response:
    """``POST /upload``: keep the upload (:func:`receive_upload`), answer its v1 record."""
    return web.json_response(upload_response(await receive_upload(request, deps, owner)))


def _file_id(file: Document) -> str:
    return str(file["_id"])


async def list_files(request: web.Request, deps: Dependencies, owner: str) -> web.StreamResponse:
    """``GET /fileids``: the caller's files, newest first.

    Without ``?limit=`` and ``?after=`` every file, streamed (old clients never page);
    with either, one page and a ``Link`` to the next.
    """
    if "limit" not in request.query and "after" not in request.query:
        return await stream_two_arrays(
            request,
            deps.files.stream_live(owner, STREAM_BATCH),
            ("file_ids", "files"),
            (_file_id, file_record),
        )
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
            form = await read_within(deps.settings.http_body_timeout_s, request.post())
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
