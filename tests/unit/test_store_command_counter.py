"""The database command counter behind ``caesar_db_commands_total`` (no database needed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from pymongo import monitoring

from caesar_common.store import COMMAND_COUNTER, CommandCounter, mongo_client

ADDRESS = ("127.0.0.1", 1)


def _started(command: dict[str, Any], request_id: int = 1) -> monitoring.CommandStartedEvent:
    return monitoring.CommandStartedEvent(command, "db", request_id, ADDRESS, None)


def _counter() -> tuple[Counter, CollectorRegistry]:
    registry = CollectorRegistry()
    counter = Counter("probe_db_commands_total", "probe", ["command"], registry=registry)
    return counter, registry


def _value(registry: CollectorRegistry, command: str) -> float | None:
    return registry.get_sample_value("probe_db_commands_total", {"command": command})


def test_counts_started_commands_by_name() -> None:
    counter, registry = _counter()
    listener = CommandCounter(counter)
    for i, command in enumerate(
        [{"insert": "jobs"}, {"update": "jobs"}, {"update": "jobs"}, {"find": "files"}, {"update": "x"}]
    ):
        listener.started(_started(command, i))
    assert _value(registry, "insert") == 1
    assert _value(registry, "update") == 3
    assert _value(registry, "find") == 1
    assert _value(registry, "delete") is None


def test_outcomes_are_not_counted_again() -> None:
    counter, registry = _counter()
    listener = CommandCounter(counter)
    listener.started(_started({"findAndModify": "jobs"}))
    listener.succeeded(
        monitoring.CommandSucceededEvent(timedelta(0), {"ok": 1}, "findAndModify", 1, ADDRESS, None)
    )
    listener.failed(monitoring.CommandFailedEvent(timedelta(0), {"ok": 0}, "findAndModify", 1, ADDRESS, None))
    assert _value(registry, "findAndModify") == 1


async def test_every_client_of_mongo_client_counts_its_commands() -> None:
    extra = CommandCounter(_counter()[0])
    client = mongo_client("mongodb://127.0.0.1:1/?retryWrites=false", event_listeners=[extra])
    try:
        # PyMongo annotates this list[_EventListeners]; it holds the listeners themselves
        listeners: list[object] = list(client.options.event_listeners)
        assert COMMAND_COUNTER in listeners
        assert extra in listeners
        assert client.write_concern.document == {"j": True}
    finally:
        await client.close()
