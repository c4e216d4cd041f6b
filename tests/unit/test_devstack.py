"""The test stacks' wiring: every port known before any service starts."""

from __future__ import annotations

from pathlib import Path

from caesar_testkit.devstack import SERVICES, Stack


def test_ports_are_assigned_up_front_and_the_api_knows_accountings(tmp_path: Path) -> None:
    stack = Stack(tmp_path, "amqp://127.0.0.1:1/", "mongodb://127.0.0.1:1/", "p")
    assert set(stack.ports) == set(SERVICES)
    assert len(set(stack.ports.values())) == len(SERVICES)
    accounting = f"http://127.0.0.1:{stack.ports['accounting']}"
    assert stack.env_for("api")["CAESAR_ACCOUNTING_URL"] == accounting
    # A second api (a replica) asks the same accounting; other services are not told.
    stack.assign_port("api2")
    assert stack.env_for("api2", service="api")["CAESAR_ACCOUNTING_URL"] == accounting
    assert "CAESAR_ACCOUNTING_URL" not in stack.env_for("scheduler")
    # A test may still point the api elsewhere.
    elsewhere = Stack(tmp_path, "a", "m", "p", extra_env={"CAESAR_ACCOUNTING_URL": "http://10.0.0.1:1"})
    assert elsewhere.env_for("api")["CAESAR_ACCOUNTING_URL"] == "http://10.0.0.1:1"
