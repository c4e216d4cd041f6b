"""The deprecated Slurm size settings, translated into rules, route exactly as before.

``CAESAR_SLURM_MIN_IMAGE_BYTES``/``CAESAR_SLURM_APPS`` meant: images at least that big
(of those apps) go to the slurm pool, everything else to another pool the app supports.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pytest

from caesar_scheduler.domain.routing import NoPoolError, choose_pool
from caesar_scheduler.settings import SchedulerSettings

GB = 2**30
BOTH = {"local", "slurm"}


def route(
    app: str,
    executors: Collection[str],
    pools: Sequence[str],
    *,
    image_bytes: int = 0,
    slurm_min_image_bytes: int = 0,
    slurm_apps: Sequence[str] = (),
) -> str:
    settings = SchedulerSettings(
        pools=list(pools), slurm_min_image_bytes=slurm_min_image_bytes, slurm_apps=list(slurm_apps)
    )
    return choose_pool(app, executors, settings.pools, image_bytes=image_bytes, rules=settings.pool_rules)


def test_without_a_size_rule_the_order_of_pools_decides() -> None:
    assert route("aegean", BOTH, ["local", "slurm"], image_bytes=10 * GB) == "local"
    assert route("aegean", BOTH, ["slurm", "local"], image_bytes=1) == "slurm"


def test_big_images_go_to_slurm_small_ones_stay_local() -> None:
    for pools in (["local", "slurm"], ["slurm", "local"]):
        assert route("aegean", BOTH, pools, image_bytes=2 * GB, slurm_min_image_bytes=GB) == "slurm"
        assert route("aegean", BOTH, pools, image_bytes=GB, slurm_min_image_bytes=GB) == "slurm"
        assert route("aegean", BOTH, pools, image_bytes=GB - 1, slurm_min_image_bytes=GB) == "local"


def test_size_rule_only_for_the_listed_apps() -> None:
    kw = {"image_bytes": 5 * GB, "slurm_min_image_bytes": GB, "slurm_apps": ["bdsf"]}
    assert route("aegean", BOTH, ["slurm", "local"], **kw) == "local"  # type: ignore[arg-type]
    assert route("bdsf", BOTH, ["local", "slurm"], **kw) == "slurm"  # type: ignore[arg-type]


def test_slurm_is_used_when_it_is_the_only_pool_the_app_can_use() -> None:
    assert route("aegean", BOTH, ["slurm"], image_bytes=1, slurm_min_image_bytes=GB) == "slurm"
    assert route("caesar", {"container", "slurm"}, ["local", "slurm"], slurm_min_image_bytes=GB) == "slurm"


def test_no_usable_pool_is_still_an_error() -> None:
    with pytest.raises(NoPoolError, match="needs one of: container"):
        route("caesar", {"container"}, ["local", "slurm"], image_bytes=5 * GB, slurm_min_image_bytes=GB)


def test_settings_default_to_no_size_rule() -> None:
    settings = SchedulerSettings()
    assert settings.slurm_min_image_bytes == 0
    assert settings.slurm_apps == []
    assert settings.pool_rules == []


def test_the_environment_variables_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAESAR_POOLS", '["local", "slurm"]')
    monkeypatch.setenv("CAESAR_SLURM_MIN_IMAGE_BYTES", "1000000")
    monkeypatch.setenv("CAESAR_SLURM_APPS", '["aegean"]')
    settings = SchedulerSettings()
    assert [r.pool for r in settings.pool_rules] == ["slurm", "local"]
    assert settings.pool_rules[0].min_image_bytes == 1_000_000
    assert settings.pool_rules[0].apps == ("aegean",)
