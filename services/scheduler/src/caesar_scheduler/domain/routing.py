"""Which executor pool runs an app."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence


class NoPoolError(LookupError):
    """No pool of this deployment can run the app; the job is ABORTED with this reason."""


def choose_pool(
    app: str,
    executors: Iterable[str],
    pools: Sequence[str],
    *,
    image_bytes: int = 0,
    slurm_min_image_bytes: int = 0,
    slurm_apps: Collection[str] = (),
) -> str:
    """The pool that runs this job: by the app's executors, the settings and the image size.

    Pools are named after their executor kind (``local``, ``slurm``), so the order of
    ``pools`` in the settings is the deployment's preference. With
    ``slurm_min_image_bytes`` set, size decides instead: images at least that large go to
    the ``slurm`` pool (for the apps in ``slurm_apps``, or any app that can run there if
    it is empty), smaller ones to another pool the app supports, because a cluster's queue
    wait is worth it only for big images.
    """
    supported = set(executors)
    usable = [pool for pool in pools if pool in supported]
    if not usable:
        kinds = ", ".join(sorted(supported)) or "none"
        raise NoPoolError(
            f"no runner pool of this deployment can run app {app} "
            f"(it needs one of: {kinds}; this deployment has: {', '.join(pools) or 'none'})"
        )
    if slurm_min_image_bytes > 0 and "slurm" in usable:
        eligible = not slurm_apps or app in slurm_apps
        if eligible and image_bytes >= slurm_min_image_bytes:
            return "slurm"
        others = [pool for pool in usable if pool != "slurm"]
        if others:
            return others[0]
    return usable[0]
