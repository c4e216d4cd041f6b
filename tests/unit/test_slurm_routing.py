"""The scheduler's choice of pool when the deployment has a Slurm pool."""

from __future__ import annotations

import pytest

from caesar_scheduler.domain.routing import NoPoolError, choose_pool
from caesar_scheduler.settings import SchedulerSettings

GB = 2**30
BOTH = {"local", "slurm"}


def test_without_a_size_rule_the_order_of_pools_decides() -> None:
    assert choose_pool("aegean", BOTH, ["local", "slurm"], image_bytes=10 * GB) == "local"
    assert choose_pool("aegean", BOTH, ["slurm", "local"], image_bytes=1) == "slurm"


def test_big_images_go_to_slurm_small_ones_stay_local() -> None:
    for pools in (["local", "slurm"], ["slurm", "local"]):
        assert choose_pool("aegean", BOTH, pools, image_bytes=2 * GB, slurm_min_image_bytes=GB) == "slurm"
        assert choose_pool("aegean", BOTH, pools, image_bytes=GB, slurm_min_image_bytes=GB) == "slurm"
        assert choose_pool("aegean", BOTH, pools, image_bytes=GB - 1, slurm_min_image_bytes=GB) == "local"


def test_size_rule_only_for_the_listed_apps() -> None:
    kw = {"image_bytes": 5 * GB, "slurm_min_image_bytes": GB, "slurm_apps": ["bdsf"]}
    assert choose_pool("aegean", BOTH, ["slurm", "local"], **kw) == "local"  # type: ignore[arg-type]
    assert choose_pool("bdsf", BOTH, ["local", "slurm"], **kw) == "slurm"  # type: ignore[arg-type]


def test_slurm_is_used_when_it_is_the_only_pool_the_app_can_use() -> None:
    assert choose_pool("aegean", BOTH, ["slurm"], image_bytes=1, slurm_min_image_bytes=GB) == "slurm"
    assert (
        choose_pool("caesar", {"container", "slurm"}, ["local", "slurm"], slurm_min_image_bytes=GB) == "slurm"
    )


def test_no_usable_pool_is_still_an_error() -> None:
    with pytest.raises(NoPoolError, match="needs one of: container"):
        choose_pool("caesar", {"container"}, ["local", "slurm"], image_bytes=5 * GB, slurm_min_image_bytes=GB)


def test_settings_default_to_no_size_rule() -> None:
    settings = SchedulerSettings()
    assert settings.slurm_min_image_bytes == 0
    assert settings.slurm_apps == []
