"""Which routes are served without a token.

Open: probes, metrics, the API description, the app catalogue and the web page's files
and configuration (nothing in them belongs to a user). Everything else needs a token,
routes added later included: an allow-list, so forgetting to protect a new route cannot
happen. Shared by the auth
middleware and the OpenAPI document, so the two cannot disagree.
"""

from __future__ import annotations

import re

V1 = "/caesar/api/v1.0"
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/asyncapi.json",
        "/docs",
        f"{V1}/apps",
        "/",
        "/web/config.json",
    }
)
# Matches concrete paths and OpenAPI templates ("{name}") alike.
_PUBLIC_RE = re.compile(rf"^(?:/docs/[^/]+|/web/[^/]+|{re.escape(V1)}/app/[^/]+/describe)$")


def is_public(path: str) -> bool:
    """Whether ``path`` is served without a token."""
    return path in PUBLIC_PATHS or bool(_PUBLIC_RE.fullmatch(path))
