"""``--since``: what a person types (``2d``, ``2026-11-30``) as the ISO time the api wants."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

AGE = re.compile(r"^(\d+)\s*([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_param(text: str, now: datetime) -> str:
    """An age (``30m``, ``6h``, ``2d``, ``1w``) before ``now``, or an ISO date/time as given.

    A time without an offset is taken as UTC (the server's clock), so the query is the same
    wherever the command runs. ValueError for anything else.
    """
    text = text.strip()
    match = AGE.fullmatch(text.lower())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return (now - timedelta(**{UNITS[unit]: amount})).isoformat(timespec="seconds")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected an ISO time (2026-11-30T12:00:00+00:00), "
            "a date or an age (30m, 6h, 2d)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=now.tzinfo)
    return when.isoformat()
