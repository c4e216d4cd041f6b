"""OpenAPI paths of the web page: ``/``, ``/web/config.json`` and the page's files.

Here rather than in ``caesar_api.openapi``: it describes this package's routes, and the
document module imports it like the other path modules."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from caesar_api.openapi.operations import binary, error, json_body, operation, path_param
from caesar_api.web import web_assets

TAG = "web"


class WebConfig(BaseModel):
    """What the web page needs before signing in (``GET /web/config.json``)."""

    auth_enabled: bool = Field(description="Whether the API needs a bearer token.")
    issuer: str | None = Field(
        description="Keycloak realm URL users' browsers sign in at; null without auth."
    )
    client_id: str | None = Field(
        description="The realm's public browser client (authorization code with PKCE); null without auth."
    )
    max_page_size: int = Field(description="The largest ?limit= the lists accept.")


def web_paths() -> dict[str, Any]:
    """``/`` (HTML), ``/web/config.json`` and ``/web/{asset}`` (scripts, style sheet, icon)."""
    names = sorted(web_assets())
    return {
        "/": {
            "get": operation(
                "webPage",
                "The web page (upload, run, follow jobs, look at the results)",
                {
                    "200": {
                        "description": "HTML page, with a strict Content-Security-Policy.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                tag=TAG,
            )
        },
        "/web/config.json": {
            "get": operation(
                "webConfig",
                "The web page's configuration: authentication and Keycloak client",
                {"200": json_body(WebConfig.model_json_schema(), "Public configuration.")},
                tag=TAG,
            )
        },
        "/web/{asset}": {
            "get": operation(
                "webAsset",
                "Static files of the web page",
                {
                    "200": binary(
                        "A script, style sheet or image.",
                        "text/javascript",
                        "text/css",
                        "image/svg+xml",
                        "image/png",
                    ),
                    "404": error("Not one of the page's files."),
                },
                tag=TAG,
                parameters=[path_param("asset", "File name, e.g. app.js.", enum=names)],
            )
        },
    }
