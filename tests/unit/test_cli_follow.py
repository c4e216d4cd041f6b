"""``caesar wait``: following a job's event stream across dropped connections."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import httpx
import pytest
from httpx_sse import ServerSentEvent

from caesar_cli.codes import ExitCode
from caesar_cli.errors import CliError
from caesar_cli.follow import (
    CLEAN_END_DELAY_S,
    Dropped,
    Ended,
    StateEvent,
    backoff_s,
    follow,
    http_stream,
    state_of,
)


class FakeStreams:
    """Each connection plays the next script: events, then a drop (an exception) or a clean end."""

    def __init__(self, scripts: list[tuple[list[StateEvent], Exception | None]]) -> None:
        self.scripts = scripts
        self.opened_after: list[str | None] = []

    @contextlib.contextmanager
    def __call__(self, last_id: str | None) -> Iterator[Iterable[StateEvent]]:
        self.opened_after.append(last_id)
        if not self.scripts:
            raise Dropped("connection refused")
        events, error = self.scripts.pop(0)

        def play() -> Iterator[StateEvent]:
            yield from events
            if error is not None:
                raise error

        yield play()


def ev(event_id: str, state: str) -> StateEvent:
    return StateEvent(event_id, state)


def test_follows_until_a_final_state() -> None:
    streams = FakeStreams([([ev("1", "QUEUED"), ev("2", "RUNNING"), ev("3", "SUCCESS")], None)])
    seen: list[str] = []
    assert follow(streams, seen.append, lambda s: None) == "SUCCESS"
    assert seen == ["QUEUED", "RUNNING", "SUCCESS"]
    assert streams.opened_after == [None]


def test_a_dropped_connection_resumes_after_the_last_event_without_loss_or_repeat() -> None:
    streams = FakeStreams(
        [
            ([ev("1", "QUEUED"), ev("2", "STARTED")], Dropped("reset by peer")),
            ([ev("3", "RUNNING")], None),  # the server closed without a final state
            ([ev("4", "FAILURE")], None),
        ]
    )
    seen: list[str] = []
    sleeps: list[float] = []
    assert follow(streams, seen.append, sleeps.append) == "FAILURE"
    assert seen == ["QUEUED", "STARTED", "RUNNING", "FAILURE"]
    assert streams.opened_after == [None, "2", "3"]
    assert sleeps == [backoff_s(1), CLEAN_END_DELAY_S]


def test_streams_the_server_ends_cleanly_never_exhaust_the_retries() -> None:
    """The server closes each stream after its longest duration; a long job outlasts many."""
    quiet: list[tuple[list[StateEvent], Exception | None]] = [([], None)] * 20
    streams = FakeStreams([([ev("1", "RUNNING")], None), *quiet, ([ev("2", "SUCCESS")], None)])
    sleeps: list[float] = []
    assert follow(streams, lambda s: None, sleeps.append, tries=3) == "SUCCESS"
    assert sleeps == [CLEAN_END_DELAY_S] * 21
    assert set(streams.opened_after[1:]) == {"1"}


def test_nothing_more_to_send_ends_the_follow() -> None:
    @contextlib.contextmanager
    def ended(last_id: str | None) -> Iterator[Iterable[StateEvent]]:
        raise Ended
        yield []

    assert follow(ended, lambda s: None, lambda s: None) is None


def test_events_without_an_id_keep_the_last_known_id() -> None:
    streams = FakeStreams(
        [([ev("7", "QUEUED"), StateEvent(None, "RUNNING")], Dropped("x")), ([ev("9", "ABORTED")], None)]
    )
    assert follow(streams, lambda s: None, lambda s: None) == "ABORTED"
    assert streams.opened_after == [None, "7"]


def test_gives_up_after_consecutive_failures_with_a_server_error() -> None:
    streams = FakeStreams([([ev("1", "RUNNING")], Dropped("reset"))])
    sleeps: list[float] = []
    with pytest.raises(CliError, match="connection refused") as caught:
        follow(streams, lambda s: None, sleeps.append, tries=3)
    assert caught.value.code == ExitCode.SERVER
    assert sleeps == [backoff_s(1), backoff_s(2), backoff_s(3)]
    assert streams.opened_after == [None, "1", "1", "1"]


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_s(50) == 10.0


@pytest.mark.parametrize(
    ("event", "data", "state"),
    [
        ("state", "RUNNING", "RUNNING"),
        ("message", "SUCCESS\n", "SUCCESS"),
        ("state", '{"job_id": "j", "state": "QUEUED", "attempt": 1}', "QUEUED"),
        ("state", "{broken", None),
        ("ping", "RUNNING", None),
        ("state", "", None),
    ],
)
def test_state_of_an_event(event: str, data: str, state: str | None) -> None:
    assert state_of(ServerSentEvent(event=event, data=data)) == state


def sse_client(handler: object) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_http_stream_sends_last_event_id_and_the_token() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        body = b"id: 5\nevent: state\ndata: RUNNING\n\n: keep-alive\n\nid: 6\nevent: state\ndata: SUCCESS\n\n"
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body)

    stream = http_stream(
        sse_client(handler), "http://api.test/api/v2/jobs/j/events", lambda: {"Authorization": "Bearer t"}
    )
    with stream("4") as events:
        assert list(events) == [StateEvent("5", "RUNNING"), StateEvent("6", "SUCCESS")]
    assert requests[0].headers["Last-Event-ID"] == "4"
    assert requests[0].headers["Authorization"] == "Bearer t"
    assert requests[0].headers["Accept"] == "text/event-stream"
    with stream(None):
        pass
    assert "Last-Event-ID" not in requests[1].headers


def test_http_stream_maps_failures() -> None:
    answers = iter(
        [
            httpx.Response(503, json={"detail": "starting"}),
            httpx.Response(429, json={"detail": "too many streams"}, headers={"Retry-After": "5"}),
            httpx.Response(204),
            httpx.Response(404, json={"status": 404, "detail": "Job j not found"}),
            httpx.Response(200, headers={"Content-Type": "application/json"}, content=b"{}"),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers)

    stream = http_stream(sse_client(handler), "http://api.test/e", dict)
    with pytest.raises(Dropped), stream(None):
        pass
    with pytest.raises(Dropped, match="429"), stream(None):
        pass
    with pytest.raises(Ended), stream(None):
        pass
    with pytest.raises(CliError, match="not found") as caught, stream(None):
        pass
    assert caught.value.code == ExitCode.NOT_FOUND
    with pytest.raises(CliError, match="event stream") as caught, stream(None) as events:
        list(events)
    assert caught.value.code == ExitCode.SERVER


def test_http_stream_turns_transport_errors_into_drops_even_mid_stream() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        pytest.raises(Dropped, match="refused"),
        http_stream(sse_client(refused), "http://api.test/e", dict)(None),
    ):
        pass

    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"id: 1\nevent: state\ndata: RUNNING\n\n"
            raise httpx.ReadError("connection reset")

    def cut(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=Broken())

    seen: list[StateEvent] = []
    with (
        pytest.raises(Dropped, match="reset"),
        http_stream(sse_client(cut), "http://api.test/e", dict)(None) as events,
    ):
        seen.extend(events)
    assert seen == [StateEvent("1", "RUNNING")]
