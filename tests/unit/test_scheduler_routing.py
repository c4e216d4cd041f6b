"""Routing rules (pure) and how the settings produce them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from caesar_scheduler.domain.routing import NoPoolError, PoolRule, choose_pool
from caesar_scheduler.settings import SchedulerSettings

MB = 1_000_000
ALL = {"local", "cluster", "gpu"}


def test_without_rules_the_first_usable_pool_wins() -> None:
    assert choose_pool("a", ALL, ["cluster", "local"]) == "cluster"
    assert choose_pool("a", {"local"}, ["cluster", "local"]) == "local"


def test_first_matching_rule_wins() -> None:
    rules = [PoolRule(pool="gpu", apps=("mrcnn",)), PoolRule(pool="cluster", min_image_bytes=MB)]
    pools = ["local", "cluster", "gpu"]
    assert choose_pool("mrcnn", ALL, pools, image_bytes=5 * MB, rules=rules) == "gpu"
    assert choose_pool("aegean", ALL, pools, image_bytes=5 * MB, rules=rules) == "cluster"
    assert choose_pool("aegean", ALL, pools, image_bytes=MB - 1, rules=rules) == "local"


def test_a_rule_whose_pool_is_unusable_is_skipped() -> None:
    rules = [PoolRule(pool="cluster"), PoolRule(pool="gpu")]
    # The app cannot run on the cluster; the deployment has no gpu pool.
    assert choose_pool("a", {"local", "gpu"}, ["local", "cluster"], rules=rules) == "local"


def test_min_image_bytes_is_inclusive() -> None:
    rule = PoolRule(pool="cluster", min_image_bytes=MB)
    assert rule.matches("a", MB)
    assert not rule.matches("a", MB - 1)


def test_no_usable_pool_is_an_error_whatever_the_rules() -> None:
    with pytest.raises(NoPoolError, match="needs one of: container"):
        choose_pool("caesar", {"container"}, ["local"], rules=[PoolRule(pool="container")])


def test_rules_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAESAR_POOLS", '["local", "slurm"]')
    monkeypatch.setenv(
        "CAESAR_POOL_RULES", '[{"pool": "slurm", "min_image_bytes": 1000000, "apps": ["aegean"]}]'
    )
    settings = SchedulerSettings()
    assert settings.pool_rules == [PoolRule(pool="slurm", min_image_bytes=MB, apps=("aegean",))]


def test_a_misspelt_rule_key_fails_at_start_up() -> None:
    with pytest.raises(ValidationError):
        SchedulerSettings(pool_rules=[{"pool": "slurm", "min_bytes": 1}])  # type: ignore[list-item]


def test_defaults_have_no_rules() -> None:
    settings = SchedulerSettings()
    assert settings.pool_rules == []


def test_deprecated_size_settings_together_with_rules_are_refused() -> None:
    with pytest.raises(ValidationError, match="not both"):
        SchedulerSettings(slurm_min_image_bytes=MB, pool_rules=[PoolRule(pool="local")])
