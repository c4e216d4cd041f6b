"""Rules about uploaded files (pure): display names and extensions.

A client's file name is kept for display only; the stored path is built from the id we
generate, the validated owner and the extension checked here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

from caesar_api.domain.errors import ApiError

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


def is_safe_extension(ext: str) -> bool:
    """Whether ``ext`` may be part of a stored file name (lower-case alphanumerics)."""
    return bool(_EXT_RE.fullmatch(ext))
