"""The privilege policy (caesar_common.access): consistent with the code it governs."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from caesar_common import access, events
from caesar_common.bus import runner_pool_queue
from caesar_common.jobstate import JobState


def matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def test_the_policy_names_the_exchanges_the_bus_uses() -> None:
    # access.py is standard-library only (make secrets runs it without the project's
    # dependencies), so it spells the names out; they must stay the bus's.
    assert access.EVENTS_EXCHANGE == events.EVENTS_EXCHANGE
    assert access.DEAD_LETTER_EXCHANGE == events.DEAD_LETTER_EXCHANGE


@pytest.mark.parametrize("state", list(JobState))
def test_every_job_state_key_is_publishable_by_the_services_that_report_states(state: JobState) -> None:
    key = f"job.state.{state.routing_suffix}"  # JobStateChanged.routing_key
    for role in ("scheduler", "runner", "monitor"):
        assert matches(access.BROKER_GRANTS[role].publishes, key)
    for role in ("api", "accounting", access.SUBSCRIBER):
        assert not matches(access.BROKER_GRANTS[role].publishes, key)


def test_only_the_scheduler_reaches_the_pools_command_queues() -> None:
    pool_queue = runner_pool_queue("slurm")
    for grant in access.BROKER_GRANTS.values():
        can_configure = matches(grant.configure, pool_queue)
        assert can_configure == (grant.role in {"scheduler", "runner", access.ADMIN}), grant.role
    # The cancel queue is the runners' own, not a pool's.
    assert not matches(access.BROKER_GRANTS["scheduler"].read, "runner.cancels")
    assert not matches(access.BROKER_GRANTS["scheduler"].read, "runner.cancels.dlq")
    assert matches(access.BROKER_GRANTS["scheduler"].read, "runner.slurm.dlq")


def test_no_service_may_configure_the_shared_exchanges() -> None:
    for grant in access.BROKER_GRANTS.values():
        if not grant.administrator:
            assert not matches(grant.configure, access.EVENTS_EXCHANGE)
            assert not matches(grant.configure, access.DEAD_LETTER_EXCHANGE)


def test_the_password_hash_is_rabbitmqs_salted_sha256() -> None:
    salt = b"\x01\x02\x03\x04"
    digest = base64.b64decode(access.rabbit_password_hash("secret", salt))
    assert digest[:4] == salt
    assert digest[4:] == hashlib.sha256(salt + b"secret").digest()


def test_definitions_hold_hashes_and_every_grant_but_no_password() -> None:
    values = access.new_secrets()
    definitions = access.broker_definitions(values)
    text = repr(definitions)
    assert not any(secret in text for secret in values.values())
    assert {u["name"] for u in definitions["users"]} == {g.user for g in access.BROKER_GRANTS.values()}
    assert {p["user"] for p in definitions["topic_permissions"]} == {
        g.user for g in access.BROKER_GRANTS.values() if not g.administrator
    }
    assert {e["name"] for e in definitions["exchanges"]} == {
        access.EVENTS_EXCHANGE,
        access.DEAD_LETTER_EXCHANGE,
    }


def test_secrets_are_random_url_safe_and_complete() -> None:
    first, second = access.new_secrets(), access.new_secrets()
    assert set(first) == set(access.SECRET_NAMES)
    assert not set(first.values()) & set(second.values())
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", v) for v in first.values())
    assert access.parse_env_file(access.format_env_file(first, "a header\nof two lines")) == first


def test_each_service_database_user_writes_its_own_database_only() -> None:
    for service in access.SERVICES:
        assert access.database_roles(service, "t1") == [{"role": "readWrite", "db": f"t1_{service}"}]
