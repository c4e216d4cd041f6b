"""Which executor pool runs a job: routing rules are data, not code.

A deployment lists its pools (``CAESAR_POOLS``, in order of preference) and, optionally,
rules (``CAESAR_POOL_RULES``) saying which jobs go where, e.g. big images of some apps to
a cluster pool. The scheduler never knows what a pool is: it only checks that the app can
run on the pool's executor kind (pools are named after their executor kind) and applies
the first rule that matches, so a new backend needs a runner, not a scheduler change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field


class NoPoolError(LookupError):
    """No pool of this deployment can run the app; the job is ABORTED with this reason."""


class PoolRule(BaseModel):
    """Send a job to ``pool`` when its app and image size match.

    ``apps`` empty means every app; ``min_image_bytes`` 0 means any size. A rule whose
    pool the app cannot use (or the deployment does not have) never matches, so a rule
    cannot send a job where it would be refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pool: str = Field(min_length=1)
    min_image_bytes: int = Field(0, ge=0)
    apps: tuple[str, ...] = ()

    def matches(self, app: str, image_bytes: int) -> bool:
        """The rule's own conditions (app, size), whatever the pools."""
        return (not self.apps or app in self.apps) and image_bytes >= self.min_image_bytes


def choose_pool(
    app: str,
    executors: Iterable[str],
    pools: Sequence[str],
    *,
    image_bytes: int = 0,
    rules: Sequence[PoolRule] = (),
) -> str:
    """The pool that runs this job: the first matching rule's, else the first usable pool.

    A pool is usable when the deployment has it and the app can run on it. Rules are
    tried in order; the first whose pool is usable and whose conditions hold wins.
    Without a match, the deployment's order of pools decides.
    """
    supported = set(executors)
    usable = [pool for pool in pools if pool in supported]
    if not usable:
        kinds = ", ".join(sorted(supported)) or "none"
        raise NoPoolError(
            f"no runner pool of this deployment can run app {app} "
            f"(it needs one of: {kinds}; this deployment has: {', '.join(pools) or 'none'})"
        )
    for rule in rules:
        if rule.pool in usable and rule.matches(app, image_bytes):
            return rule.pool
    return usable[0]
