"""Per-user storage quotas (pure): may this user store one more file, of this size?

The figures (what is used, what the limit is) go into the error beside the message, so
a client can show them or decide what to delete without parsing text. Too many bytes
is 507 Insufficient Storage, as a full disk already is (clients retry after making room);
too many files is 403, a rule of the service rather than a lack of space.
"""

from __future__ import annotations

from dataclasses import dataclass

from caesar_api.domain.errors import ApiError


@dataclass(frozen=True)
class Usage:
    """What one user's live (not deleted) files take."""

    files: int
    bytes: int


def files_quota_exceeded(used: int, limit: int) -> ApiError:
    return ApiError(
        403,
        f"File quota exceeded: {used} files stored, the limit is {limit} files; delete files to upload more",
        details={"used_files": used, "limit_files": limit},
    )


def bytes_quota_exceeded(used: int, limit: int, upload: int | None = None) -> ApiError:
    """507 with the figures; ``upload`` is the upload's size when it is known in full."""
    adds = f", this upload adds {upload}" if upload is not None else ""
    details = {"used_bytes": used, "limit_bytes": limit}
    if upload is not None:
        details["upload_bytes"] = upload
    return ApiError(
        507,
        f"Storage quota exceeded: {used} bytes stored{adds}, the limit is {limit} bytes; "
        "delete files to upload more",
        details=details,
    )


@dataclass(frozen=True)
class Quota:
    """A user's limits; 0 means no limit on that count."""

    max_bytes: int = 0
    max_files: int = 0

    @property
    def limited(self) -> bool:
        return bool(self.max_bytes or self.max_files)

    def bytes_left(self, usage: Usage) -> int | None:
        """How many more bytes the user may store (``None``: no byte limit)."""
        if not self.max_bytes:
            return None
        return max(0, self.max_bytes - usage.bytes)

    def check_room(self, usage: Usage) -> None:
        """Refuse an upload before any byte is stored if no file at all could be kept.

        A user at the byte limit could only add an empty file: refused too, so a client
        learns at once rather than after sending gigabytes.
        """
        if self.max_files and usage.files >= self.max_files:
            raise files_quota_exceeded(usage.files, self.max_files)
        if self.max_bytes and usage.bytes >= self.max_bytes:
            raise bytes_quota_exceeded(usage.bytes, self.max_bytes)

    def check_keep(self, usage: Usage, size: int) -> None:
        """Refuse keeping a received file of ``size`` bytes on top of ``usage``."""
        if self.max_files and usage.files + 1 > self.max_files:
            raise files_quota_exceeded(usage.files, self.max_files)
        if self.max_bytes and usage.bytes + size > self.max_bytes:
            raise bytes_quota_exceeded(usage.bytes, self.max_bytes, size)


NO_QUOTA = Quota()
