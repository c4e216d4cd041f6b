"""Parsing what UWS clients send: job parameters, list filters, WAIT (pure).

UWS parameters arrive as form fields (``application/x-www-form-urlencoded`` or
``multipart/form-data``), every value a string, and parameter names are matched without
regard to case (as IVOA protocols do). The control parameters are ``PHASE`` (only
``RUN``), ``RUNID`` (kept as the job's tag) and ``inputfile`` (a file id, or a path named
``<file id>.<ext>``, as in v1 ``job_inputs``); every other name is an option of the app,
turned into the type the app declares for it so the app's own validation (ranges,
enums, unknown names) judges it exactly as for a v1 or v2 submission.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from vo_models.uws.types import ExecutionPhase

from caesar_api.domain.errors import ApiError, shown
from caesar_api.domain.jobs import NON_OPTION_INPUTS, TAG_MAX, file_id_from_reference
from caesar_common.apps import App, Option
from caesar_common.apps.base import OptionValue

PHASE: Final = "phase"
RUNID: Final = "runid"
INPUTFILE: Final = "inputfile"
IGNORED: Final = frozenset(n.lower() for n in NON_OPTION_INPUTS) - {INPUTFILE}
"""v1's other non-option inputs (``envfile``, ``run``): accepted and ignored, as v1 does."""
_INT_RE: Final = re.compile(r"^[+-]?\d+$")
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class JobParameters:
    """Parameters of a UWS request, typed; ``None`` where the request did not set them."""

    options: dict[str, OptionValue] = field(default_factory=dict)
    file_id: str | None = None
    run_id: str | None = None
    run: bool = False
    """``PHASE=RUN`` was given."""


def coerce(option: Option | None, text: str) -> OptionValue:
    """A form value as the option's type; left as text where it does not parse.

    Text that does not parse is kept as it is, so the app's validation rejects it with
    its own message naming the option (``seedthr: Input should be a valid number``).
    """
    value = text.strip()
    if option is None or option.kind == "enum":
        return text
    if option.kind == "flag":
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return text
    if option.kind == "int" and _INT_RE.fullmatch(value):
        return int(value)
    try:
        return float(value)  # an int option given 5.0 is normalised by the app, 5.5 refused
    except ValueError:
        return text


def render_value(value: object) -> str:
    """A parameter's value as UWS shows it (booleans in XML Schema spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def options_by_lower_name(app: App) -> dict[str, Option]:
    """The app's options keyed by lower-cased name (names are matched without case)."""
    return {option.name.lower(): option for option in app.options}


def parse_parameters(fields: Iterable[tuple[str, str]], app: App) -> JobParameters:
    """The parameters of a create or ``/parameters`` request.

    A name given twice, a ``PHASE`` other than ``RUN``, a ``RUNID`` longer than a tag may
    be, and an ``inputfile`` that names no file id are 400s; option values are judged
    later, by the app.
    """
    known = options_by_lower_name(app)
    seen: set[str] = set()
    options: dict[str, OptionValue] = {}
    file_id: str | None = None
    run_id: str | None = None
    run = False
    for raw_name, value in fields:
        name = raw_name.strip().lower()
        if name in seen:
            raise ApiError(400, f"Parameter {shown(raw_name)} given more than once")
        seen.add(name)
        if name == PHASE:
            if value.strip().upper() != "RUN":
                raise ApiError(400, f"PHASE={shown(value)} is not allowed here; only PHASE=RUN")
            run = True
        elif name == RUNID:
            if len(value) > TAG_MAX:
                raise ApiError(400, f"RUNID longer than {TAG_MAX} characters")
            run_id = value
        elif name == INPUTFILE:
            file_id = file_id_from_reference(value.strip())
            if file_id is None:
                raise ApiError(
                    400,
                    f"Invalid inputfile {shown(value)}: expected a file id or a path named <file id>.<ext>",
                )
        elif name in IGNORED:
            continue
        else:
            option = known.get(name)
            options[option.name if option else raw_name] = coerce(option, value)
    return JobParameters(options=options, file_id=file_id, run_id=run_id, run=run)


_TIME_RE: Final = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?$"
)
INT32_MAX: Final = 2**31 - 1


def parse_time(name: str, raw: str) -> datetime:
    """An RFC 3339 instant (``Z`` or an offset; none: UTC), in UTC.

    Everything RFC 3339 allows is taken: a lower-case ``t``/``z``, a leap second (read as
    the second before it), any number of fraction digits (cut to microseconds).
    """
    match = _TIME_RE.fullmatch(raw.strip())
    if match is None:
        raise ApiError(
            400, f"Invalid {name} {shown(raw)}: expected an ISO 8601 time such as 2026-11-30T17:04:05Z"
        )
    day, minutes, seconds, fraction, offset = match.groups()
    seconds = "59" if seconds == "60" else seconds
    fraction = (fraction or "")[:7]
    zone = "+00:00" if offset in (None, "Z", "z") else offset
    try:
        value = datetime.fromisoformat(f"{day}T{minutes}:{seconds}{fraction}{zone}")
    except ValueError:
        raise ApiError(400, f"Invalid {name} {shown(raw)}: no such date or time") from None
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 and the like: the ends of time
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)


def parse_int(name: str, raw: str, *, minimum: int, maximum: int = INT32_MAX) -> int:
    """A whole number from ``minimum`` to ``maximum``."""
    value = raw.strip()
    if not _INT_RE.fullmatch(value) or len(value) > 18 or not minimum <= int(value) <= maximum:
        raise ApiError(
            400, f"Invalid {name} {shown(raw)}: expected a whole number from {minimum} to {maximum}"
        )
    return int(value)


def single(query: Mapping[str, str], name: str) -> str | None:
    """A query parameter named ``name`` in any case (the first if several spellings)."""
    for key, value in query.items():
        if key.lower() == name.lower():
            return value
    return None


def every(query: Iterable[tuple[str, str]], name: str) -> list[str]:
    """Every value of a repeatable query parameter, in any case of its name."""
    return [value for key, value in query if key.lower() == name.lower()]


@dataclass(frozen=True)
class ListQuery:
    """``GET /uws/<app>``: ``PHASE`` (repeatable), ``AFTER`` and ``LAST``."""

    phases: list[str]
    after: datetime | None
    last: int | None


def parse_list_query(query: Iterable[tuple[str, str]]) -> ListQuery:
    """The job list's filters; a malformed ``AFTER`` or a ``LAST`` below 1 is a 400."""
    pairs = list(query)
    after = next((parse_time("AFTER", v) for v in every(pairs, "AFTER")[:1]), None)
    last = next((parse_int("LAST", v, minimum=1) for v in every(pairs, "LAST")[:1]), None)
    return ListQuery(phases=every(pairs, "PHASE"), after=after, last=last)


@dataclass(frozen=True)
class WaitRequest:
    """``GET /uws/<app>/<id>?WAIT=<s>[&PHASE=<phase>]``: how long to block at most, from when."""

    seconds: float
    """0: do not block."""
    phase: ExecutionPhase | None
    """Return at once unless the job is still in this phase (the client's last view)."""


def parse_wait(query: Iterable[tuple[str, str]], max_wait_s: float) -> WaitRequest:
    """``WAIT`` in whole seconds, -1 meaning "as long as the server allows".

    The server maximum caps every wait, an indefinite one included (UWS 1.1 section
    2.2.1.2 lets a server return early).
    """
    pairs = list(query)
    raw_wait = next(iter(every(pairs, "WAIT")), None)
    raw_phase = next(iter(every(pairs, "PHASE")), None)
    seconds = 0.0
    if raw_wait is not None:
        wanted = parse_int("WAIT", raw_wait, minimum=-1, maximum=10**15)
        seconds = max_wait_s if wanted < 0 else min(float(wanted), max_wait_s)
    phase = None
    if raw_phase is not None:
        try:
            phase = ExecutionPhase(raw_phase.strip().upper())
        except ValueError:
            raise ApiError(400, f"Unknown PHASE {shown(raw_phase)}") from None
    return WaitRequest(seconds=seconds, phase=phase)
