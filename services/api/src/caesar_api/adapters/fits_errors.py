"""Why an upload's FITS check refused it (shared by :mod:`.fits` and :mod:`.compressed`)."""

from __future__ import annotations


class NotFitsError(ValueError):
    """The file is not a usable FITS image; the message says why, for the client."""


class DecompressedTooLargeError(ValueError):
    """A compressed image declares more decompressed bytes than the api accepts.

    Told apart from :class:`NotFitsError` because it is a size limit (413 with the
    figures), not a broken file (400).
    """

    def __init__(self, declared_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"Compressed FITS image too large: it expands to {declared_bytes} bytes, "
            f"the limit is {limit_bytes} bytes"
        )
        self.declared_bytes = declared_bytes
        self.limit_bytes = limit_bytes
