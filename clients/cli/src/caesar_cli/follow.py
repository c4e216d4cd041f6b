"""Following a job's Server-Sent Events until it ends, across dropped connections.

The reconnect logic is kept apart from HTTP (``open_stream`` is any function that opens
the stream after a given event id), so it is tested with small fakes: a dropped
connection resumes with ``Last-Event-ID`` and no state is lost or repeated; a stream
that keeps failing without delivering anything gives up after a bounded number of tries.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final

import httpx
from httpx_sse import ServerSentEvent, SSEError, connect_sse

from caesar_cli.codes import ExitCode
from caesar_cli.errors import CliError, http_error

FINAL_STATES: Final = frozenset(
    {"SUCCESS", "FAILURE", "TIMED_OUT", "TIMED-OUT", "CANCELED", "ABORTED", "DELETED"}
)
RECONNECT_TRIES: Final = 8
"""Consecutive failed connections (nothing received) before ``wait`` gives up (exit 5)."""
CLEAN_END_DELAY_S: Final = 1.0
"""Pause before reopening a stream the server closed on its own (not a failure)."""
READ_TIMEOUT_S: Final = 90.0
"""Silence after which the connection counts as dead: well above the server's heartbeat."""


@dataclass(frozen=True)
class StateEvent:
    event_id: str | None
    state: str


class Dropped(Exception):
    """The connection broke or the server was briefly unavailable: reconnect."""


class Ended(Exception):
    """The server has nothing more to send about the job (204): it has ended."""


OpenStream = Callable[[str | None], AbstractContextManager[Iterable[StateEvent]]]


def backoff_s(failures: int) -> float:
    """0.5 s, 1 s, 2 s ... capped at 10 s between reconnects."""
    return float(min(10.0, 0.5 * 2 ** max(0, failures - 1)))


def follow(
    open_stream: OpenStream,
    on_state: Callable[[str], None],
    sleep: Callable[[float], None],
    tries: int = RECONNECT_TRIES,
) -> str | None:
    """Report every state until a final one, which is returned.

    A connection that drops is reopened after the last event id seen, with a growing
    delay; the failure count resets whenever an event arrives, and a stream the server
    ended cleanly (its duration limit) is reopened at once without counting as a failure,
    so a job of many hours is followed to its end. ``None``: the server said the stream
    has nothing more (HTTP 204), i.e. the job has ended; the caller reads its state.
    """
    last_id: str | None = None
    failures = 0
    while True:
        try:
            with open_stream(last_id) as events:
                for event in events:
                    failures = 0
                    if event.event_id:
                        last_id = event.event_id
                    on_state(event.state)
                    if event.state in FINAL_STATES:
                        return event.state
        except Ended:
            return None
        except Dropped as exc:
            failures += 1
            if failures > tries:
                raise CliError(
                    f"Lost the job's event stream: {exc or exc.__class__.__name__}", ExitCode.SERVER
                ) from None
            sleep(backoff_s(failures))
            continue
        sleep(CLEAN_END_DELAY_S)


def state_of(sse: ServerSentEvent) -> str | None:
    """The state an event carries: the per-job stream's bare name, or a JSON object's ``state``."""
    if sse.event not in ("state", "message"):
        return None
    data = sse.data.strip()
    if data.startswith("{"):
        try:
            parsed = json.loads(data)
        except ValueError:
            return None
        state = parsed.get("state") if isinstance(parsed, dict) else None
        return str(state) if state else None
    return data or None


def _states(events: Iterable[ServerSentEvent]) -> Iterator[StateEvent]:
    for sse in events:
        state = state_of(sse)
        if state:
            yield StateEvent(sse.id or None, state)


def http_stream(http: httpx.Client, url: str, headers: Callable[[], dict[str, str]]) -> OpenStream:
    """An :data:`OpenStream` over HTTP; transport errors and 5xx become :class:`Dropped`."""

    @contextlib.contextmanager
    def open_stream(last_id: str | None) -> Iterator[Iterable[StateEvent]]:
        sent = headers()
        if last_id:
            sent["Last-Event-ID"] = last_id
        timeout = httpx.Timeout(15.0, read=READ_TIMEOUT_S)
        try:
            with connect_sse(http, "GET", url, headers=sent, timeout=timeout) as source:
                resp = source.response
                if resp.status_code == 204:
                    raise Ended
                if resp.status_code >= 400:
                    resp.read()
                    if resp.status_code in (429, 502, 503, 504):
                        raise Dropped(f"HTTP {resp.status_code}")
                    raise http_error(resp.status_code, resp.content, resp.reason_phrase)
                yield _states(source.iter_sse())
        except SSEError as exc:
            raise CliError(f"The server did not answer with an event stream: {exc}", ExitCode.SERVER) from exc
        except httpx.TransportError as exc:
            raise Dropped(str(exc) or exc.__class__.__name__) from exc

    return open_stream
