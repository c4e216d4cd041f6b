"""Pure facts of the web page: its files, its Content-Security-Policy, its configuration.

Only files listed here are served, by name from a fixed table built once from the
package directory (never a path made of client text), so nothing else in the package is
reachable. The CSP allows scripts, styles, images and connections from the api's own
origin only, plus connections to Keycloak's origin when authentication is on (the
token endpoint is called from the page); no inline script or style, no third party.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from caesar_api.settings import ApiSettings

STATIC_DIR: Final = Path(__file__).parent / "static"
"""The page's files, shipped inside the package (hatch includes every file under src/)."""

INDEX: Final = "index.html"
"""Served at ``/``, not under ``/web/``."""

MEDIA_TYPES: Final[dict[str, str]] = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
}
_SAFE_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class WebAsset:
    """One servable file: its path in the package and its media type."""

    path: Path
    media_type: str


@functools.cache
def web_assets() -> dict[str, WebAsset]:
    """Every file of ``static/`` the page may ask for, by name (the index excluded)."""
    assets: dict[str, WebAsset] = {}
    for path in sorted(STATIC_DIR.iterdir()):
        media = MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media and path.name != INDEX and _SAFE_NAME.fullmatch(path.name):
            assets[path.name] = WebAsset(path, media)
    return assets


def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, or ``None`` when it has none."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: ApiSettings) -> str:
    """The page's CSP: own origin only; Keycloak's origin for ``fetch`` when auth is on.

    ``blob:`` images are the thumbnails the page draws from the user's own file;
    ``form-action`` and ``frame-ancestors`` close the usual clickjacking and form
    hijacking doors.
    """
    connect = ["'self'"]
    if settings.auth_enabled:
        origin = _origin(settings.expected_issuer)
        if origin:
            connect.append(origin)
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        f"connect-src {' '.join(connect)}",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
    return "; ".join(directives)


def web_config(settings: ApiSettings) -> dict[str, Any]:
    """``GET /web/config.json``: what the page needs before it can sign in.

    The issuer is the one tokens must carry (what users' browsers reach Keycloak at);
    the client is the realm's public browser client (authorization code with PKCE);
    ``max_page_size`` lets the job list ask for whole pages the server accepts.
    """
    common = {"max_page_size": settings.max_page_size}
    if not settings.auth_enabled:
        return {"auth_enabled": False, "issuer": None, "client_id": None, **common}
    return {
        "auth_enabled": True,
        "issuer": settings.expected_issuer,
        "client_id": settings.web_client_id,
        **common,
    }
