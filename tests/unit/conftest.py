"""Unit tests run without RabbitMQ, the database or any service (`make test-unit`).

A unit test that asks for a broker or database fixture is refused at collection, so the
promise of `make test-unit` (seconds, on any laptop, nothing started) cannot erode one
convenient fixture at a time; such a test belongs in tests/integration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INFRA_FIXTURES = frozenset({"vhost", "amqp_url", "db_prefix", "mongo_url", "async_mongo"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hooks here see every collected item, hence the path check."""
    for item in items:
        wanted = INFRA_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if wanted and item.path.is_relative_to(HERE):
            raise pytest.UsageError(
                f"{item.nodeid} uses {sorted(wanted)}: unit tests need no infrastructure; "
                "move it to tests/integration"
            )
