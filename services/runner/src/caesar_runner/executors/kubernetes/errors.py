"""How the Kubernetes API fails, as the executor tells the cases apart.

lightkube raises :class:`~lightkube.ApiError` for an answer with an error status and
lets its HTTP client's own errors through for a connection that failed. That client
(httpx2) is lightkube's dependency, not ours: its base class is reached through
``ApiError`` so the runner declares lightkube alone.
"""

from __future__ import annotations

from typing import Final

from lightkube import ApiError

HTTPError: Final[type[Exception]] = next(c for c in ApiError.__mro__ if c.__name__ == "HTTPError")
"""Every error of lightkube's HTTP client: refused connections, timeouts, error answers."""

StatusError: Final[type[Exception]] = next(c for c in ApiError.__mro__ if c.__name__ == "HTTPStatusError")


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an error answer (from its Status body, else the response); None
    for an error that got no answer."""
    if isinstance(exc, ApiError):
        code = getattr(exc.status, "code", None)
        if isinstance(code, int):
            return code
    if isinstance(exc, StatusError):
        response = getattr(exc, "response", None)
        code = getattr(response, "status_code", None)
        return code if isinstance(code, int) else None
    return None


def is_transient(code: int | None) -> bool:
    """Worth retrying: no answer, a conflict of our own retried create, throttling, a 5xx."""
    return code is None or code in (409, 429) or code >= 500


class KubeUnavailable(Exception):
    """The API server could not be reached for longer than the grace period."""


class KubeForbidden(Exception):
    """The API server refused the runner (401/403): a deployment error, not the job's."""
