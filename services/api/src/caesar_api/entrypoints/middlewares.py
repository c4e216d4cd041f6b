"""The middlewares of the api: one JSON error shape, authentication, readiness.

Every error leaves as JSON (``{"status": message}``): routes raise :class:`ApiError`,
aiohttp's own 404/405/413 are translated, and anything unexpected becomes a 500 without
a stack trace or request body in the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import ClientPayloadError, web
from aiohttp.typedefs import Handler

from caesar_api.auth import ANONYMOUS_IDENTITY, IDENTITY_KEY, AuthError, TokenVerifier
from caesar_api.auth.identity import DEFERRED_IDENTITY, TOKEN_CHECK_KEY
from caesar_api.auth.public import is_public
from caesar_api.domain.errors import ApiError
from caesar_api.entrypoints.limits import read_within
from caesar_api.entrypoints.routes import V1
from caesar_api.settings import ApiSettings
from caesar_common.logging import get_logger
from caesar_common.runtime import RUNTIME_KEY

log = get_logger(__name__)

SETTINGS_KEY: web.AppKey[ApiSettings] = web.AppKey("api_settings", ApiSettings)
VERIFIER_KEY: web.AppKey[TokenVerifier] = web.AppKey("api_token_verifier", TokenVerifier)
FORM_TYPE = "application/x-www-form-urlencoded"

_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


def json_error(
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, int] | None = None,
) -> web.Response:
    """The v1 error shape: ``{"status": message}``, with an error's figures beside it."""
    return web.json_response({"status": message, **(details or {})}, status=status, headers=headers)


def auth_error(exc: AuthError) -> web.Response:
    """401 with the RFC 6750 challenge (403/503 without); never echoes the token."""
    headers = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="caesar", error="invalid_token"'}
    return json_error(exc.status, exc.message, headers)


def _header_token(request: web.Request) -> str | None:
    value = request.headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Invalid Authorization header: expected 'Bearer <token>'")
    return token.strip()


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the caller's identity, or answer 401 before any handler runs.

    Tokens come in ``Authorization: Bearer``, or (v1 clients) in an ``access_token``
    form field: urlencoded bodies here, multipart uploads in the upload route, which
    must read the field before the file. Tokens in the query string are refused even
    with a valid header: URLs end up in proxy logs and browser history.
    """
    settings = request.app[SETTINGS_KEY]
    if not settings.auth_enabled:
        request[IDENTITY_KEY] = ANONYMOUS_IDENTITY
        return await handler(request)
    if is_public(request.path):
        return await handler(request)
    verifier = request.app[VERIFIER_KEY]
    try:
        if "access_token" in request.query:
            raise AuthError("Tokens in the query string are not accepted: send 'Authorization: Bearer'")
        token = _header_token(request)
        if token is None and request.method == "POST" and request.content_type == FORM_TYPE:
            form = await read_within(settings.http_body_timeout_s, request.post())
            value = form.get("access_token")
            token = value if isinstance(value, str) and value else None
        if (
            token is None
            and request.method == "POST"
            and request.path == f"{V1}/upload"
            and request.content_type.startswith("multipart/")
        ):
            request[IDENTITY_KEY] = DEFERRED_IDENTITY
            request[TOKEN_CHECK_KEY] = verifier.verify
            return await handler(request)
        if token is None:
            raise AuthError("Missing bearer token")
        request[IDENTITY_KEY] = await verifier.verify(token)
    except AuthError as exc:
        # The reason only: the token itself never reaches a log line.
        log.info("request not authenticated", method=request.method, path=request.path, reason=exc.message)
        return auth_error(exc)
    return await handler(request)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into the one JSON error shape; never an HTML page."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.http_status, exc.message, exc.headers or None, exc.details)
    except AuthError as exc:
        return auth_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_error(exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason), headers)
    except (ConnectionResetError, ClientPayloadError) as exc:
        # The client went away mid-request; nobody reads this answer.
        log.info("client disconnected", path=request.path, error=type(exc).__name__)
        return json_error(400, "Request interrupted")
    except asyncio.CancelledError:
        raise
    except Exception:
        # Method and path only: bodies and query strings may hold tokens or data.
        log.exception("unhandled error", method=request.method, path=request.path)
        return json_error(500, "Internal server error")


@web.middleware
async def require_ready(request: web.Request, handler: Handler) -> web.StreamResponse:
    """503 on API routes until the broker and database are connected."""
    if request.path.startswith(V1 + "/"):
        runtime = request.app.get(RUNTIME_KEY)
        if runtime is None or not runtime.ready:
            return json_error(503, "Service starting, not ready yet; retry shortly")
    return await handler(request)
