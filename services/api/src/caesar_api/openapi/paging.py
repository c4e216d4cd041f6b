"""The ``?limit=&after=`` parameters of every list, with the deployment's bounds."""

from __future__ import annotations

from caesar_api.openapi.components import Schema
from caesar_api.openapi.models import FILE_ID_PATTERN, JOB_ID_PATTERN
from caesar_api.openapi.operations import query_param
from caesar_api.settings import ApiSettings

NEXT_LINK: Schema = {
    "Link": {
        "description": 'RFC 8288 link to the next page (rel="next"), present when one exists.',
        "schema": {"type": "string"},
    }
}


def page_params(settings: ApiSettings, item: str) -> list[Schema]:
    """``limit`` (1 to the largest page size) and ``after`` (the id of a ``file`` or ``job``)."""
    pattern = FILE_ID_PATTERN if item == "file" else JOB_ID_PATTERN
    return [
        query_param(
            "limit",
            f"Items per page (default {settings.default_page_size}).",
            {"type": "integer", "minimum": 1, "maximum": settings.max_page_size},
        ),
        query_param(
            "after",
            f"Id of the last {item} of the previous page (from the Link header).",
            {"type": "string", "pattern": pattern},
        ),
    ]
