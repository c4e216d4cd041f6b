"""``?limit=&after=`` of the list routes, checked the same way everywhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from yarl import URL

from caesar_api.domain.errors import ApiError, shown
from caesar_api.settings import ApiSettings


def page_params(
    query: Mapping[str, str], settings: ApiSettings, is_id: Callable[[str], bool]
) -> tuple[int, str | None]:
    """The page size and the cursor id of a list request; 400 for bad values."""
    raw = query.get("limit")
    limit = settings.default_page_size
    if raw is not None:
        # ASCII digits only: int() would also take " 5", "+5", "5_0" or non-ASCII digits.
        limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
        if not 1 <= limit <= settings.max_page_size:
            raise ApiError(
                400,
                f"Invalid limit {shown(raw)}: expected an integer from 1 to {settings.max_page_size}!",
            )
    after = query.get("after")
    if after is not None and not is_id(after):
        raise ApiError(400, f"Invalid after cursor {shown(after)}!")
    return min(limit, settings.max_page_size), after


def next_link(url: URL, limit: int, last_id: str) -> str:
    """RFC 8288 ``Link`` header value pointing at the next page."""
    target = url.relative().with_query({"limit": str(limit), "after": last_id})
    return f'<{target}>; rel="next"'
