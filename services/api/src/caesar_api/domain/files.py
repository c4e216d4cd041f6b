"""Rules about uploaded files (pure): display names, extensions, the record of an upload.

A client's file name is kept for display only; the stored path is built from the id we
generate, the validated owner and the extension checked here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from caesar_api.domain.errors import ApiError
from caesar_common.events import FileUploaded

DISPLAY_NAME_MAX = 255
_EXT_RE = re.compile(r"^[a-z0-9]{1,16}$")


def display_name(filename: str) -> str:
    """The client's file name reduced to something safe to store and show.

    Browsers and curl may send a full path (``C:\\\\data\\\\map.fits``): keep the last
    component, drop control characters and cap the length.
    """
    name = re.split(r"[/\\]", filename)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:DISPLAY_NAME_MAX]


def upload_extension(filename: str, allowed: Collection[str]) -> str:
    """The lower-case extension of an upload, if it is an allowed format.

    Raises :class:`ApiError`: 400 for an empty name, 415 for a format not allowed (the
    old service's message, listing the allowed formats).
    """
    name = display_name(filename)
    if not name:
        raise ApiError(400, "Empty filename given!")
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if not _EXT_RE.fullmatch(ext) or ext not in allowed:
        formats = "{" + ", ".join(f"'{f}'" for f in sorted(allowed)) + "}"
        raise ApiError(415, f"File format not allowed, allowed file types are: {formats}")
    return ext


@dataclass(frozen=True)
class StoredUpload:
    """What is known of an upload once its bytes are on disk and checked."""

    file_id: str
    owner: str
    filename: str
    ext: str
    size_bytes: int
    sha256: str
    tag: str
    fits: Mapping[str, Any] | None


def new_file_record(upload: StoredUpload, now: datetime) -> tuple[dict[str, Any], FileUploaded]:
    """The ``files`` record of an upload and the ``FileUploaded`` event announcing it.

    One function builds both, so the record and the event can never disagree on size,
    checksum or time.
    """
    record: dict[str, Any] = {
        "_id": upload.file_id,
        "owner": upload.owner,
        "filename_orig": upload.filename,
        "ext": upload.ext,
        "size_bytes": upload.size_bytes,
        "sha256": upload.sha256,
        "tag": upload.tag,
        "uploaded_at": now,
        "fits": dict(upload.fits) if upload.fits is not None else None,
        "deleted": False,
    }
    event = FileUploaded(
        file_id=upload.file_id,
        owner=upload.owner,
        filename=upload.filename,
        ext=upload.ext,
        size_bytes=upload.size_bytes,
        sha256=upload.sha256,
        tag=upload.tag,
        uploaded_at=now,
    )
    return record, event
