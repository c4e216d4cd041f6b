"""Which executor pool runs an app."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class NoPoolError(LookupError):
    """No pool of this deployment can run the app; the job is ABORTED with this reason."""


def choose_pool(app: str, executors: Iterable[str], pools: Sequence[str]) -> str:
    """The first configured pool whose executor kind the app supports.

    Pools are named after their executor kind (``local``, ``slurm``), so the order of
    ``pools`` in the settings is the deployment's preference.
    """
    supported = set(executors)
    for pool in pools:
        if pool in supported:
            return pool
    kinds = ", ".join(sorted(supported)) or "none"
    raise NoPoolError(
        f"no runner pool of this deployment can run app {app} "
        f"(it needs one of: {kinds}; this deployment has: {', '.join(pools) or 'none'})"
    )
