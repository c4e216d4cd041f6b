"""Quotas: the policy and its verdict (caesar_common.quotas), the scheduler's holds and
releases, and accounting's judge, all against in-memory fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from caesar_accounting.service.quotas import QuotaJudge, QuotaWatch
from caesar_common.events import Envelope, JobCancelRequested, QuotaChanged
from caesar_common.quotas import QuotaLimits, QuotaPolicy, Usage, judge, load_policy
from caesar_common.store import Document
from caesar_scheduler.domain.phases import FINISHED, HELD, WAITING
from tests.unit.fakes.scheduler import FakeQuotaVerdicts
from tests.unit.test_scheduler_handlers import JOB, Scheduler, submitted

NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)
JOB2 = "22222222-2222-4222-8222-222222222222"

POLICY = QuotaPolicy.model_validate(
    {
        "default": {"running_jobs": 2, "cpu_hours_month": 10, "stored_bytes": 1000},
        "roles": {
            "big": {"cpu_hours_month": 100},
            "bigger": {"cpu_hours_month": 50, "stored_bytes": None},
            "admin": {"running_jobs": None},
        },
        "users": {"carol": {"running_jobs": 8}},
    }
)


# ---------------------------------------------------------------- policy


def test_the_default_applies_to_everyone_without_a_role_or_entry() -> None:
    assert POLICY.limits_for("alice") == QuotaLimits(running_jobs=2, cpu_hours_month=10, stored_bytes=1000)


def test_a_role_replaces_only_the_limits_it_sets_and_the_most_generous_role_wins() -> None:
    limits = POLICY.limits_for("bob", ["big", "bigger", "unknown-role"])
    assert limits.cpu_hours_month == 100  # big's 100 beats bigger's 50
    assert limits.stored_bytes is None  # bigger lifts the storage limit: unlimited wins
    assert limits.running_jobs == 2  # neither role sets it: the default


def test_a_users_own_entry_wins_over_roles() -> None:
    assert POLICY.limits_for("carol", ["admin"]).running_jobs == 8


def test_a_policy_file_is_validated_at_load(tmp_path: Path) -> None:
    good = tmp_path / "quotas.json"
    good.write_text(json.dumps({"default": {"running_jobs": 1}}))
    assert load_policy(good).limits_for("x").running_jobs == 1
    assert load_policy(None) == QuotaPolicy()
    assert not load_policy(None).limits_anything
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"default": {"running_jobs": -1, "gpu_hours": 3}}))
    with pytest.raises(ValidationError):
        load_policy(bad)


def test_a_user_is_over_once_usage_reaches_a_limit_and_the_reason_has_the_figures() -> None:
    limits = POLICY.limits_for("alice")
    assert not judge(limits, Usage(running_jobs=1, cpu_hours_month=9.99, stored_bytes=999)).over
    verdict = judge(limits, Usage(running_jobs=2, cpu_hours_month=12.5, stored_bytes=10))
    assert verdict.over
    assert sorted(verdict.exceeded) == ["cpu_hours_month", "running_jobs"]
    assert verdict.reason() == "over quota: running_jobs 2 of 2, cpu_hours_month 12.5 of 10"


def test_unlimited_is_never_exceeded() -> None:
    assert not judge(QuotaLimits(), Usage(running_jobs=10**6, cpu_hours_month=1e9, stored_bytes=10**15)).over


# ---------------------------------------------------------------- scheduler


def quota_event(revision: int, over: bool, owner: str = "alice") -> QuotaChanged:
    reason = "over quota: running_jobs 2 of 2" if over else ""
    return QuotaChanged(owner=owner, over=over, reason=reason, revision=revision, evaluated_at=NOW)


def with_quotas() -> tuple[Scheduler, FakeQuotaVerdicts]:
    s = Scheduler()
    verdicts = FakeQuotaVerdicts()
    s.deps.quotas = verdicts
    return s, verdicts


async def test_a_new_job_of_a_user_over_quota_is_held_with_the_reason() -> None:
    s, _ = with_quotas()
    await s.send(quota_event(1, over=True))
    await s.send(submitted())
    assert s.jobs.docs[JOB]["phase"] == HELD
    assert s.jobs.states() == [("HELD", 1)]
    assert s.jobs.events[-1].data["reason"] == "over quota: running_jobs 2 of 2"
    assert s.wakes.count == 0  # nothing to dispatch
    assert await s.dispatch() == 0


async def test_back_under_quota_releases_held_jobs_oldest_first_and_wakes_the_dispatcher() -> None:
    s, _ = with_quotas()
    await s.send(quota_event(1, over=True))
    await s.send(submitted(job_id=JOB2))
    await s.send(submitted(job_id=JOB))
    await s.send(quota_event(2, over=False))
    assert [s.jobs.docs[j]["phase"] for j in (JOB, JOB2)] == [WAITING, WAITING]
    released = [e.data["job_id"] for e in s.jobs.events if e.data["state"] == "QUEUED"]
    assert released == [JOB2, JOB]
    assert s.wakes.count == 1


async def test_a_stale_verdict_is_ignored_whatever_the_order() -> None:
    s, verdicts = with_quotas()
    await s.send(quota_event(2, over=False))
    await s.send(quota_event(1, over=True))  # older: arrives late
    assert verdicts.verdicts["alice"][:2] == (2, False)
    await s.send(submitted())
    assert s.jobs.docs[JOB]["phase"] == WAITING


async def test_jobs_already_queued_are_not_held() -> None:
    s, _ = with_quotas()
    await s.send(submitted())
    await s.send(quota_event(1, over=True))
    assert s.jobs.docs[JOB]["phase"] == WAITING


async def test_a_held_job_can_be_cancelled() -> None:
    s, _ = with_quotas()
    await s.send(quota_event(1, over=True))
    await s.send(submitted())
    await s.send(JobCancelRequested(job_id=JOB, owner="alice", requested_at=NOW))
    assert s.jobs.docs[JOB]["phase"] == FINISHED
    assert s.jobs.states()[-1] == ("CANCELED", 1)
    await s.send(quota_event(2, over=False))  # nothing left to release
    assert s.jobs.states()[-1] == ("CANCELED", 1)


async def test_a_release_that_lands_while_a_job_is_being_held_does_not_strand_it() -> None:
    """Admission read "over"; the release runs before the HELD job is written, so it finds
    nothing to release. Admission's second read sees the release and queues the job."""
    s, verdicts = with_quotas()
    await s.send(quota_event(1, over=True))
    released: list[bool] = []

    async def release_meanwhile() -> None:
        if not released:
            released.append(True)
            await s.send(quota_event(2, over=False))

    verdicts.after_read.append(release_meanwhile)
    await s.send(submitted())
    assert s.jobs.docs[JOB]["phase"] == WAITING
    assert s.jobs.states() == [("HELD", 1), ("QUEUED", 1)]


async def test_without_quotas_configured_nothing_is_ever_held() -> None:
    s = Scheduler()
    await s.send(quota_event(1, over=True))
    await s.send(submitted())
    assert s.jobs.docs[JOB]["phase"] == WAITING


# ---------------------------------------------------------------- accounting


class FakeOwners:
    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}
        self.events: list[Envelope] = []

    async def get(self, owner: str) -> Document | None:
        doc = self.docs.get(owner)
        return dict(doc) if doc is not None else None

    async def remember_roles(self, owner: str, roles: Any) -> None:
        self.docs.setdefault(owner, {"_id": owner})["roles"] = list(roles)

    async def record_verdict(
        self, owner: str, seen_revision: int, fields: dict[str, Any], event: Envelope
    ) -> bool:
        doc = self.docs.setdefault(owner, {"_id": owner})
        if int(doc.get("revision") or 0) != seen_revision:
            return False
        doc.update(fields, revision=seen_revision + 1)
        self.events.append(event)
        return True

    async def over_owners(self) -> list[str]:
        return [o for o, d in self.docs.items() if d.get("over")]


def accounting_judge(usage: dict[str, Usage]) -> tuple[QuotaJudge, FakeOwners, list[str]]:
    owners = FakeOwners()
    kicked: list[str] = []

    async def usage_of(owner: str, now: datetime) -> Usage:
        return usage.get(owner, Usage())

    judge_ = QuotaJudge(
        policy=POLICY,
        owners=owners,
        usage_of=usage_of,
        kick=lambda doc_id, envelopes=(), commands=(): kicked.append(doc_id),
        clock=lambda: NOW,
    )
    return judge_, owners, kicked


def announced(owners: FakeOwners) -> list[tuple[bool, int, str]]:
    return [(e.data["over"], e.data["revision"], e.data["reason"]) for e in owners.events]


async def test_accounting_announces_going_over_once_and_coming_back_under() -> None:
    usage = {"alice": Usage(running_jobs=2)}
    judge_, owners, kicked = accounting_judge(usage)
    assert await judge_.judge("alice")
    assert not await judge_.judge("alice")  # same verdict: nothing new to say
    usage["alice"] = Usage(running_jobs=1)
    assert await judge_.judge("alice")
    assert announced(owners) == [(True, 1, "over quota: running_jobs 2 of 2"), (False, 2, "")]
    assert kicked == ["alice", "alice"]
    assert owners.events[0].routing_key == "quota.changed"


async def test_a_user_never_over_quota_causes_no_event() -> None:
    judge_, owners, _ = accounting_judge({"bob": Usage(running_jobs=1)})
    assert not await judge_.judge("bob")
    assert owners.events == []


async def test_roles_from_submissions_raise_the_limits() -> None:
    judge_, owners, _ = accounting_judge({"bob": Usage(cpu_hours_month=20)})
    await judge_.remember_roles("bob", ["big"])
    assert not await judge_.judge("bob")  # 20 of big's 100
    await judge_.remember_roles("bob", [])
    assert await judge_.judge("bob")  # 20 of the default 10
    assert announced(owners)[0][2] == "over quota: cpu_hours_month 20 of 10"


async def test_the_watch_judges_each_touched_owner_once() -> None:
    usage = {"alice": Usage(running_jobs=5), "bob": Usage()}
    judge_, _, _ = accounting_judge(usage)
    watch = QuotaWatch(judge_)
    watch.touch(["alice", "bob", "alice"])
    assert await watch.judge_touched() == 1
    assert await watch.judge_touched() == 0  # nothing touched since
