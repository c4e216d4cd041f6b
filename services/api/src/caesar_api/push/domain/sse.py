"""Server-Sent Events on the wire, and the event ids that let a client resume (pure).

The framing follows the HTML living standard's ``text/event-stream``: ``id:``,
``event:`` and one ``data:`` line per line of data, then a blank line; a line starting
with ``:`` is a comment that clients ignore, which is what keeps idle proxies open.

Event ids say where a client is, so that ``Last-Event-ID`` resumes without a gap:

* per job, the job's position, ``<attempt>.<STATE>`` (``2.RUNNING``): the history after
  it is exactly what the client has not seen;
* per user, a time in Unix milliseconds: the states applied since then (less a margin,
  see :mod:`.resume`) are replayed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from caesar_common.jobstate import JobPosition, JobState

STATE_EVENT: Final = "state"
KEEP_ALIVE: Final = b": keep-alive\n\n"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_JOB_ID = re.compile(r"^(\d{1,6})\.([A-Z-]{4,9})$")
_USER_ID = re.compile(r"^\d{1,15}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadEventId(ValueError):
    """A ``Last-Event-ID`` this server never sent (the client gets a 400)."""


def event_frame(event_id: str, data: str, event: str = STATE_EVENT) -> bytes:
    """One event: ``id``, ``event``, the data line by line, and the blank line ending it."""
    if _LINE_BREAK.search(event_id) or "\0" in event_id or _LINE_BREAK.search(event):
        raise ValueError("an event id or name must be one line")
    lines = [f"id: {event_id}", f"event: {event}"]
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode()


def retry_frame(milliseconds: int) -> bytes:
    """Tells the client how long to wait before reconnecting."""
    return f"retry: {int(milliseconds)}\n\n".encode()


def job_event_id(position: JobPosition) -> str:
    """The per-job stream's id of a state: the job's position (``1.RUNNING``)."""
    return f"{position.attempt}.{position.state.value}"


def parse_job_event_id(value: str) -> JobPosition:
    """The position a per-job id names; :class:`BadEventId` if it is not one."""
    match = _JOB_ID.fullmatch(value)
    if match is None:
        raise BadEventId("expected <attempt>.<STATE>, as this stream sent it")
    try:
        state = JobState(match.group(2))
    except ValueError:
        raise BadEventId("unknown state in the event id") from None
    return JobPosition(int(match.group(1)), state)


def user_event_id(at: datetime) -> str:
    """The per-user stream's id of a state: a time in Unix milliseconds."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return str((at - _EPOCH) // timedelta(milliseconds=1))  # exact: no float rounding


def parse_user_event_id(value: str) -> datetime:
    """The time a per-user id names; :class:`BadEventId` if it is not one."""
    if not _USER_ID.fullmatch(value):
        raise BadEventId("expected the Unix milliseconds this stream sent")
    return _EPOCH + timedelta(milliseconds=int(value))
