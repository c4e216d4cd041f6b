"""Cursor pagination on an indexed key (pure query building).

Lists are sorted newest first on ``(<time field>, _id)``, both descending, which a
compound index serves. The cursor is the id of the last item of the previous page: the
next page holds what sorts strictly after it, so inserts and deletes between requests
never duplicate or skip an item the way offsets would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from caesar_common.store import Document


@dataclass(frozen=True)
class Page:
    """One page of documents and whether another page follows."""

    items: list[Document] = field(default_factory=list)
    more: bool = False


def after_filter(time_field: str, last: Document) -> Document:
    """Query clause for items sorting after ``last`` in ``(time_field desc, _id desc)``."""
    return {
        "$or": [
            {time_field: {"$lt": last[time_field]}},
            {time_field: last[time_field], "_id": {"$lt": last["_id"]}},
        ]
    }
