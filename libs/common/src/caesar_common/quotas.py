"""Quotas: the policy (per user, with a default and per-role overrides) and its verdict (pure).

Three resources are limited: jobs running at once, CPU hours per calendar month (UTC)
and bytes stored. Accounting measures usage and judges it with :func:`judge`; when a
user's verdict changes it announces ``QuotaChanged``, and the scheduler holds that user's
*new* jobs (``HELD``) until usage falls below every limit again. The api refuses an
upload over the storage limit (507) on its own, with the same policy.

The policy is a JSON file (``CAESAR_QUOTAS_FILE``)::

    {"default": {"running_jobs": 4, "cpu_hours_month": 100, "stored_bytes": 10000000000},
     "roles": {"admin": {"running_jobs": null, "cpu_hours_month": null}},
     "users": {"alice": {"cpu_hours_month": 500}}}

A limit left out inherits; ``null`` means unlimited. A role's limit replaces the
default's; with several roles the most generous wins; a user's own entry wins over all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

RUNNING_JOBS: Final = "running_jobs"
CPU_HOURS_MONTH: Final = "cpu_hours_month"
STORED_BYTES: Final = "stored_bytes"
RESOURCES: Final = (RUNNING_JOBS, CPU_HOURS_MONTH, STORED_BYTES)


class QuotaLimits(BaseModel):
    """Limits of one scope; a field not given inherits, ``None`` is unlimited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    running_jobs: int | None = Field(None, ge=0)
    cpu_hours_month: float | None = Field(None, ge=0)
    stored_bytes: int | None = Field(None, ge=1)

    def given(self) -> dict[str, float | None]:
        """The limits this scope sets (left-out fields excluded, explicit ``None`` kept)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _more_generous(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(a, b)


class QuotaPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: QuotaLimits = QuotaLimits()
    roles: dict[str, QuotaLimits] = {}
    users: dict[str, QuotaLimits] = {}

    def limits_for(self, owner: str, roles: Iterable[str] = ()) -> QuotaLimits:
        limits: dict[str, float | None] = {r: getattr(self.default, r) for r in RESOURCES}
        from_roles: dict[str, float | None] = {}
        for role in sorted(set(roles) & set(self.roles)):
            for name, value in self.roles[role].given().items():
                from_roles[name] = _more_generous(from_roles[name], value) if name in from_roles else value
        limits.update(from_roles)
        if owner in self.users:
            limits.update(self.users[owner].given())
        return QuotaLimits.model_validate(limits)

    @property
    def limits_anything(self) -> bool:
        """Whether any scope sets a limit (if not, nobody is ever held)."""
        scopes = [self.default, *self.roles.values(), *self.users.values()]
        return any(value is not None for scope in scopes for value in scope.given().values())


def load_policy(path: Path | None) -> QuotaPolicy:
    """The policy in ``path`` (none given: no limits); a malformed file fails at start."""
    if path is None:
        return QuotaPolicy()
    return QuotaPolicy.model_validate_json(path.read_text())


@dataclass(frozen=True)
class Usage:
    running_jobs: int = 0
    cpu_hours_month: float = 0.0
    stored_bytes: int = 0

    def of(self, resource: str) -> float:
        return float(getattr(self, resource))


@dataclass(frozen=True)
class Verdict:
    """Whether a user is over quota, and on which resources (used, limit)."""

    exceeded: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def over(self) -> bool:
        return bool(self.exceeded)

    def reason(self) -> str:
        """What a held job's status says: each exhausted resource with its figures."""
        if not self.exceeded:
            return ""
        parts = [
            f"{name} {_figure(used)} of {_figure(limit)}" for name, (used, limit) in self.exceeded.items()
        ]
        return "over quota: " + ", ".join(parts)


def _figure(value: float) -> str:
    return f"{value:.6g}"


def judge(limits: QuotaLimits, usage: Usage) -> Verdict:
    """Over a limit once usage has reached it: at the limit a new job would go beyond it."""
    exceeded = {}
    for name in RESOURCES:
        limit = getattr(limits, name)
        if limit is not None and usage.of(name) >= limit:
            exceeded[name] = (usage.of(name), float(limit))
    return Verdict(exceeded)
