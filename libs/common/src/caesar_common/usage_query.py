"""The parameters of a usage report: date range, grouping, whose usage (pure).

Two services read them: the api from its users (``/api/v2/accounting/usage``, where the
owner parameter is ``user``) and accounting from the api (its internal ``/usage/report``,
``owner``). Both parse them here, so a value one accepts the other accepts too, and the
api can answer every bad value with a 400 before it asks accounting anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

from caesar_common.ids import OWNER_RE

GROUP_BY: Final = ("user", "app", "day")
"""What a report has one row per: a user (owner id), an app, a UTC calendar day."""
DEFAULT_GROUP_BY: Final = "user"
# ASCII digits only: ``\d`` also matches other scripts' digits, and date.fromisoformat
# accepts forms (20260504, 2026-W19-1) that no client of ours should depend on.
DAY_RE: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", re.ASCII)


class UsageQueryError(ValueError):
    """A parameter the report cannot take; the message says which and why."""


def parse_day(name: str, value: str | None) -> date | None:
    """``YYYY-MM-DD`` as a date; ``None`` when the parameter is absent."""
    if value is None:
        return None
    if not DAY_RE.fullmatch(value):
        raise UsageQueryError(f"{name} must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageQueryError(f"{name} must be a real calendar date YYYY-MM-DD") from None


@dataclass(frozen=True)
class UsageQuery:
    """A report over the jobs submitted (files uploaded) from ``first`` to ``last``, inclusive.

    A missing bound leaves that side open; ``owner`` ``None`` means everyone.
    """

    group_by: str = DEFAULT_GROUP_BY
    first: date | None = None
    last: date | None = None
    owner: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str], *, owner_key: str) -> UsageQuery:
        """Read ``from``, ``to``, ``group_by`` and the owner (named ``owner_key``)."""
        group_by = query.get("group_by", DEFAULT_GROUP_BY)
        if group_by not in GROUP_BY:
            raise UsageQueryError(f"group_by must be one of {', '.join(GROUP_BY)}")
        first = parse_day("from", query.get("from"))
        last = parse_day("to", query.get("to"))
        if first is not None and last is not None and first > last:
            raise UsageQueryError(f"from ({first}) is after to ({last})")
        owner = query.get(owner_key)
        if owner is not None and not OWNER_RE.fullmatch(owner):
            raise UsageQueryError(f"{owner_key} is not a valid user id")
        return cls(group_by=group_by, first=first, last=last, owner=owner)

    def params(self, *, owner_key: str) -> dict[str, str]:
        """The query string that :meth:`parse` reads back as this query."""
        params = {"group_by": self.group_by}
        if self.first is not None:
            params["from"] = self.first.isoformat()
        if self.last is not None:
            params["to"] = self.last.isoformat()
        if self.owner is not None:
            params[owner_key] = self.owner
        return params
