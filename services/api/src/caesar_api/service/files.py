"""Use cases of uploaded files: keep an upload, look one up, delete, list.

The HTTP route streams the multipart body into a temporary file (size and SHA-256
computed on the way, within the bytes the owner's quota leaves: :func:`admit`);
:func:`upload` decides whether it is kept: a ``.fits`` must be a real FITS image (its
header facts are recorded; a compressed one must not declare more than the limit), the
owner's quota must still hold with this file, then the file gets its real name (synced
to disk, with its directory) and its record and ``FileUploaded`` event are written
together. Any failure leaves nothing behind, neither bytes nor record.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caesar_api.adapters.fits import DecompressedTooLargeError, NotFitsError, read_fits_facts
from caesar_api.adapters.pagination import Page
from caesar_api.domain.errors import ApiError, shown
from caesar_api.domain.files import StoredUpload, new_file_record
from caesar_api.domain.quota import NO_QUOTA, Quota, Usage
from caesar_api.domain.responses import stored_now
from caesar_api.service.ports import FileSpace, FileStore, PendingUpload
from caesar_common.ids import is_file_id
from caesar_common.logging import get_logger
from caesar_common.store import Document

log = get_logger(__name__)

# Write errors that mean "no room": 507 Insufficient Storage, so clients know to retry later.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
FILE_DELETED = "File deleted and removed from DB"

FactsReader = Callable[[Path], Awaitable[dict[str, Any]]]


def file_not_found(file_id: str) -> ApiError:
    """The v1 404: the same answer for an unknown id, a bad id and another user's file."""
    return ApiError(404, f"File with uuid {shown(file_id)} not found on the system!")


@contextmanager
def storage_errors() -> Iterator[None]:
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


@dataclass(frozen=True)
class ReceivedUpload:
    """A complete upload in its temporary file, as the HTTP route received it."""

    owner: str
    file_id: str
    filename: str
    ext: str
    tag: str
    sha256: str
    pending: PendingUpload


async def admit(files: FileStore, owner: str, quota: Quota) -> Usage | None:
    """Before any byte is stored: refuse an owner whose quota is full; return the usage.

    ``None`` when there is no quota. With the usage the route stops reading (507) once
    a file outgrows what is left, instead of storing gigabytes only to refuse them.
    """
    if not quota.limited:
        return None
    usage = await files.usage(owner)
    quota.check_room(usage)
    return usage


async def upload(
    received: ReceivedUpload,
    *,
    files: FileStore,
    space: FileSpace,
    read_facts: FactsReader = read_fits_facts,
    quota: Quota = NO_QUOTA,
    owner_lock: AbstractAsyncContextManager[object] | None = None,
) -> Document:
    """Check and keep an upload: FITS facts, quota, final name, record with ``FileUploaded``.

    Returns the stored record. On any failure (not FITS, over a limit, disk full,
    database down, client gone) the bytes are removed and nothing is recorded.
    ``owner_lock`` (the owner's, from :class:`~caesar_api.service.upload_gate.UploadGate`)
    is held from the quota check to the record, so two uploads of one user cannot both
    pass a check that only one of them fits.
    """
    pending = received.pending
    owner, file_id, ext = received.owner, received.file_id, received.ext
    try:
        fits_facts: dict[str, Any] | None = None
        if ext == "fits":
            try:
                fits_facts = await read_facts(pending.temp)
            except NotFitsError as exc:
                raise ApiError(400, f"Invalid FITS file {shown(received.filename)}: {exc}") from None
            except DecompressedTooLargeError as exc:
                raise ApiError(
                    413,
                    str(exc),
                    details={"decompressed_bytes": exc.declared_bytes, "limit_bytes": exc.limit_bytes},
                ) from None
        async with owner_lock if owner_lock is not None else nullcontext():
            if quota.limited:
                quota.check_keep(await files.usage(owner), pending.size)
            with storage_errors():
                await pending.commit(space.path_of(owner, file_id, ext))
            stored = StoredUpload(
                file_id=file_id,
                owner=owner,
                filename=received.filename,
                ext=ext,
                size_bytes=pending.size,
                sha256=received.sha256,
                tag=received.tag,
                fits=fits_facts,
            )
            record, event = new_file_record(stored, stored_now())
            try:
                await files.add(record, event)
            except BaseException:
                await asyncio.shield(space.remove(owner, file_id, ext))
                raise
    except BaseException:
        # Whatever failed, and wherever (a cancelled wait for the lock included): the
        # temporary file goes; after a commit there is none left and this does nothing.
        await pending.discard()
        raise
    log.info("file uploaded", file_id=file_id, owner=owner, size_bytes=pending.size, ext=ext)
    return record


async def owned_file(files: FileStore, owner: str, file_id: str, *, admin: bool = False) -> Document:
    """The caller's live file (anyone's for an admin); the id is checked before any lookup.

    Another user's file gives the very same 404 as an unknown id, so ids cannot be probed.
    """
    if not is_file_id(file_id):
        raise file_not_found(file_id)
    record = await (files.get_any(file_id) if admin else files.get(owner, file_id))
    if record is None:
        raise file_not_found(file_id)
    return record


async def stored_file(
    files: FileStore, space: FileSpace, owner: str, file_id: str, *, admin: bool = False
) -> tuple[Document, Path]:
    """The caller's file record and the path of its bytes (404 if either is missing)."""
    record = await owned_file(files, owner, file_id, admin=admin)
    path = space.path_of(record["owner"], file_id, record["ext"])
    if not await asyncio.to_thread(path.is_file):
        log.error("file record without its file", file_id=file_id, owner=owner)
        raise file_not_found(file_id)
    return record, path


async def delete(
    files: FileStore, space: FileSpace, owner: str, file_id: str, *, admin: bool = False
) -> None:
    """Mark the record deleted (with ``FileDeleted``), then remove the bytes.

    The record is marked, not removed: the event leaves through its outbox, and a file
    id is never reused. A concurrent delete that won makes this one a 404.
    """
    record = await owned_file(files, owner, file_id, admin=admin)
    if not await files.mark_deleted(record):
        raise file_not_found(file_id)
    await space.remove(record["owner"], file_id, record["ext"])
    log.info("file deleted", file_id=file_id, owner=owner)


async def list_page(files: FileStore, owner: str, limit: int, after_id: str | None) -> Page:
    """One page of the caller's live files, newest first, after the file named by the cursor."""
    after = None
    if after_id is not None:
        after = await files.get_cursor(owner, after_id)
        if after is None:
            raise ApiError(400, f"Invalid after cursor {after_id}!")
    return await files.list(owner, limit, after)
