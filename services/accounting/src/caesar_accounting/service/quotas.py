"""Judging users against the quota policy and announcing each change of verdict.

Usage changes with the events accounting consumes, so the owners those events touched
are judged soon after (:class:`QuotaWatch`), and owners over quota are judged again
periodically: their usage can fall without any event of theirs (a new month starts).
A ``QuotaChanged`` is announced only when the set of exhausted resources changes, so the
scheduler hears of a user going over or back under, not of every CPU second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from caesar_accounting import metrics
from caesar_common.events import Envelope, QuotaChanged
from caesar_common.logging import get_logger
from caesar_common.outbox import Kick, envelope_for
from caesar_common.quotas import RESOURCES, QuotaPolicy, Usage, judge
from caesar_common.store import Document

log = get_logger(__name__)
SOURCE = "accounting"


class QuotaOwners(Protocol):
    async def get(self, owner: str) -> Document | None: ...

    async def remember_roles(self, owner: str, roles: Sequence[str]) -> None: ...

    async def record_verdict(
        self, owner: str, seen_revision: int, fields: dict[str, Any], event: Envelope
    ) -> bool: ...

    async def over_owners(self) -> list[str]: ...


UsageOf = Callable[[str, datetime], Awaitable[Usage]]


@dataclass
class QuotaJudge:
    policy: QuotaPolicy
    owners: QuotaOwners
    usage_of: UsageOf
    kick: Kick
    clock: Callable[[], datetime]
    _roles_seen: dict[str, tuple[str, ...]] = field(default_factory=dict)

    async def remember_roles(self, owner: str, roles: Sequence[str]) -> None:
        """The roles a user submitted with (cached: written when they change)."""
        key = tuple(sorted(roles))
        if self._roles_seen.get(owner) != key:
            await self.owners.remember_roles(owner, key)
            self._roles_seen[owner] = key

    async def judge(self, owner: str) -> bool:
        """Judge one user; ``True`` if a change of verdict was announced."""
        for _ in range(3):  # another judge may write between our read and write
            doc = await self.owners.get(owner) or {}
            limits = self.policy.limits_for(owner, doc.get("roles") or ())
            now = self.clock()
            usage = await self.usage_of(owner, now)
            verdict = judge(limits, usage)
            metrics.observe_quota(owner, {r: usage.of(r) for r in RESOURCES}, limits.model_dump())
            exceeded = sorted(verdict.exceeded)
            if exceeded == (doc.get("exceeded") or []) and "revision" in doc:
                return False
            if not doc.get("revision") and not verdict.over:
                return False  # never judged over: nothing to announce
            revision = int(doc.get("revision") or 0)
            message = QuotaChanged(
                owner=owner,
                over=verdict.over,
                reason=verdict.reason(),
                usage={r: usage.of(r) for r in RESOURCES},
                limits=limits.model_dump(),
                revision=revision + 1,
                evaluated_at=now,
            )
            event = envelope_for(message, SOURCE)
            fields = {
                "over": verdict.over,
                "exceeded": exceeded,
                "reason": message.reason,
                "usage": message.usage,
                "limits": message.limits,
                "judged_at": now,
            }
            if await self.owners.record_verdict(owner, revision, fields, event):
                self.kick(owner, [event])
                log.info("quota verdict changed", owner=owner, over=verdict.over, reason=message.reason)
                return True
        return False


@dataclass
class QuotaWatch:
    """The owners whose usage moved, judged soon after by :meth:`run`."""

    judge: QuotaJudge
    recheck_s: float = 60.0
    _touched: set[str] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self, owners: Iterable[str]) -> None:
        new = set(owners) - self._touched
        if new:
            self._touched |= new
            self._wake.set()

    async def judge_touched(self) -> int:
        owners, self._touched = self._touched, set()
        self._wake.clear()
        changed = 0
        for owner in sorted(owners):
            try:
                changed += await self.judge.judge(owner)
            except Exception:
                log.exception("quota judgement failed", owner=owner)
                self._touched.add(owner)
        return changed

    async def run(self) -> None:
        """Judge touched owners as they come; every ``recheck_s``, all owners over quota."""
        loop = asyncio.get_running_loop()
        next_recheck = loop.time() + self.recheck_s
        while True:
            timeout = max(0.0, next_recheck - loop.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                self.touch(await self.judge.owners.over_owners())
                next_recheck = loop.time() + self.recheck_s
            await self.judge_touched()
