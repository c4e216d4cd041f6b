"""The one error type the api answers with.

Handlers and the domain raise :class:`ApiError`; the HTTP entrypoint turns it into the
v1.0 error shape (a JSON object whose message is in ``status``) with the given code, so
there is exactly one place that formats errors.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

_PRINTABLE = frozenset(string.ascii_letters + string.digits + string.punctuation + " ")
SHOWN_MAX = 64
INVALID_REQUEST_DATA = "Invalid request data!"


class ApiError(Exception):
    """A request the api refuses: HTTP status code and a human-readable message.

    ``details`` are figures a client can act on without parsing the message (a quota's
    use and limit); they go into the JSON body beside the message. ``headers`` go into
    the answer (``Retry-After``).
    """

    def __init__(
        self,
        http_status: int,
        message: str,
        *,
        details: Mapping[str, int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.details: dict[str, int] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})


def shown(value: object, limit: int = SHOWN_MAX) -> str:
    """A client-supplied value made safe to echo in a message.

    Error messages repeat what the client sent (``File with uuid X not found``); a
    megabyte of garbage or control characters must not be echoed back or logged, so keep
    printable ASCII only and cut long values.
    """
    text = "".join(c if c in _PRINTABLE else "?" for c in str(value))
    if len(text) > limit:
        return text[:limit] + "..."
    return text
