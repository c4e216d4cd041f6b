"""Job users of a root runner: the pure decisions (uids, setpriv argv, ACLs, records)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from caesar_runner.domain import acl
from caesar_runner.domain.acl import AclEntry, AclError
from caesar_runner.domain.jobusers import (
    MAX_UID,
    Handover,
    JobUser,
    JobUserMode,
    UidRange,
    ancestors,
    dirs_between,
    foreign_uids,
    job_user_mode,
    roots_overlap,
    setpriv_user_options,
)
from caesar_runner.domain.process import Limits, limited_argv
from caesar_runner.settings import RunnerSettings

# -- which uids, and when -----------------------------------------------------------------


def test_uid_range_parses_first_last_and_a_single_uid() -> None:
    r = UidRange.parse(" 60600-60603 ")
    assert (r.first, r.last, r.size, str(r)) == (60600, 60603, 4, "60600-60603")
    assert list(r) == [60600, 60601, 60602, 60603]
    assert 60601 in r
    assert 60604 not in r
    assert "60601" not in r
    assert UidRange.parse("70000").size == 1


@pytest.mark.parametrize("text", ["", "abc", "1-", "-5", "0-10", "10-5", f"1-{MAX_UID + 1}", "1-2-3"])
def test_uid_range_refuses_root_reversed_and_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="job uids"):
        UidRange.parse(text)


def test_candidates_cover_the_range_once_from_a_rotating_start() -> None:
    r = UidRange(10, 13)
    assert r.candidates(0) == [10, 11, 12, 13]
    assert r.candidates(2) == [12, 13, 10, 11]
    assert r.candidates(6) == [12, 13, 10, 11]  # wraps
    # Successive starts try a uid just used last: least recently used first.
    assert r.candidates(1)[-1] == 10


def test_accounts_outside_the_job_group_are_foreign() -> None:
    r = UidRange(100, 110)
    # 101: a named job user (primary group: the job group); 102: a real account; 200: outside.
    assert foreign_uids(r, {101: 995, 102: 1000, 200: 1000}, job_gid=995) == [102]
    assert foreign_uids(r, {}, job_gid=995) == []


@pytest.mark.parametrize(
    ("euid", "run_as_runner", "mode"),
    [
        (0, False, JobUserMode.JOB_USERS),
        (0, True, JobUserMode.UNSAFE_RUNNER),
        (10001, False, JobUserMode.RUNNER),
        (10001, True, JobUserMode.RUNNER),
    ],
)
def test_secure_by_default_only_root_switches(euid: int, run_as_runner: bool, mode: JobUserMode) -> None:
    assert job_user_mode(euid, run_as_runner) is mode


def test_settings_default_and_refuse_a_malformed_range() -> None:
    settings = RunnerSettings()
    assert UidRange.parse(settings.job_uids).size >= 64
    assert settings.job_group == "caesar-job"
    assert settings.jobs_run_as_runner is False
    assert RunnerSettings(job_uids="70000 - 70009").job_uids == "70000-70009"
    with pytest.raises(ValidationError, match="job uids"):
        RunnerSettings(job_uids="0-9")


# -- the argv ------------------------------------------------------------------------------


def test_a_job_user_is_switched_to_by_setpriv_before_the_death_signal_and_limits() -> None:
    user = JobUser(60601, 995)
    argv = limited_argv(["aegean", "x; id"], Limits(100, 64, 1024), user)
    assert argv[: argv.index("--")] == [
        "setpriv",
        "--reuid",
        "60601",
        "--regid",
        "995",
        "--clear-groups",
        "--no-new-privs",
        "--pdeathsig",
        "KILL",
    ]
    assert argv[argv.index("--") + 1] == "prlimit"
    assert argv[-2:] == ["aegean", "x; id"]
    assert setpriv_user_options(user) == argv[1:7]


def test_without_a_job_user_the_argv_is_unchanged() -> None:
    assert limited_argv(["app"], Limits(1, 2, 3))[:4] == ["setpriv", "--pdeathsig", "KILL", "--"]


# -- which directories ---------------------------------------------------------------------


def test_dirs_between_the_jobs_root_and_an_attempt() -> None:
    root = Path("/srv/jobs")
    assert dirs_between(root, root / "alice" / "j1" / "attempts" / "2") == [
        root / "alice",
        root / "alice" / "j1",
        root / "alice" / "j1" / "attempts",
    ]
    for outside in (Path("/srv/other/x"), root):
        with pytest.raises(ValueError, match="not inside"):
            dirs_between(root, outside)


def test_ancestors_from_the_root_down() -> None:
    assert ancestors(Path("/root/.pyenv/bin/python")) == [
        Path("/"),
        Path("/root"),
        Path("/root/.pyenv"),
        Path("/root/.pyenv/bin"),
    ]


def test_nested_roots_overlap() -> None:
    assert roots_overlap(Path("/d"), Path("/d/jobs"))
    assert roots_overlap(Path("/d/jobs"), Path("/d"))
    assert roots_overlap(Path("/d"), Path("/d"))
    assert not roots_overlap(Path("/d/data"), Path("/d/jobs"))


def test_handover_record_round_trips_and_garbage_is_none() -> None:
    record = Handover("/j/a/1", 0, "/j/a/1/f.fits", "/d/alice/f.fits")
    assert Handover.from_bytes(record.to_bytes()) == record
    bare = Handover("/j/a/1", 5)
    assert Handover.from_bytes(bare.to_bytes()) == bare
    for junk in (b"", b"  ", b"{", b"[]", b'{"gid": 1}', b'{"attempt_dir": "/x", "gid": "a"}'):
        assert Handover.from_bytes(junk) is None


# -- the ACL codec -------------------------------------------------------------------------

# Read from a real directory (mode 0755, then `g:995:--x`): the kernel's own bytes.
KERNEL_BLOB = bytes.fromhex(
    "0200000001000700ffffffff04000500ffffffff08000100e303000010000500ffffffff20000500ffffffff"
)


def test_decodes_and_encodes_the_kernels_bytes() -> None:
    entries = acl.decode(KERNEL_BLOB)
    assert acl.named_perms(entries, acl.GROUP, 995) == acl.EXECUTE
    assert acl.encode(entries) == KERNEL_BLOB
    assert acl.encode(acl.with_named(acl.from_mode(0o755), acl.GROUP, 995, acl.EXECUTE)) == KERNEL_BLOB


@pytest.mark.parametrize("blob", [b"", b"\x02\x00\x00", b"\x01\x00\x00\x00", KERNEL_BLOB[:-1]])
def test_refuses_what_is_not_a_version_2_acl(blob: bytes) -> None:
    with pytest.raises(AclError):
        acl.decode(blob)


def test_minimal_acl_is_the_mode() -> None:
    assert acl.from_mode(0o640) == (
        AclEntry(acl.USER_OBJ, acl.UNDEFINED_ID, 6),
        AclEntry(acl.GROUP_OBJ, acl.UNDEFINED_ID, 4),
        AclEntry(acl.OTHER, acl.UNDEFINED_ID, 0),
    )


def test_a_read_grant_sets_the_mask_and_its_revocation_restores_the_mode() -> None:
    private = acl.from_mode(0o600)
    granted = acl.with_named(private, acl.USER, 60601, acl.READ)
    assert acl.named_perms(granted, acl.USER, 60601) == acl.READ
    assert AclEntry(acl.MASK, acl.UNDEFINED_ID, acl.READ) in granted
    # The owning group keeps no access: the mask only bounds it.
    assert AclEntry(acl.GROUP_OBJ, acl.UNDEFINED_ID, 0) in granted
    assert acl.without_named(granted, acl.USER, 60601) == private
    assert acl.without_named(private, acl.USER, 60601) is private


def test_grants_of_two_uids_are_independent_and_sorted() -> None:
    both = acl.with_named(acl.with_named(acl.from_mode(0o600), acl.USER, 7, 4), acl.USER, 5, 4)
    assert [e.qualifier for e in both if e.tag == acl.USER] == [5, 7]
    one = acl.without_named(both, acl.USER, 7)
    assert acl.named_perms(one, acl.USER, 5) == 4
    assert acl.named_perms(one, acl.USER, 7) is None
    assert any(e.tag == acl.MASK for e in one)  # still a named entry: still a mask


def test_a_deny_entry_keeps_the_mask_of_the_owning_group() -> None:
    denied = acl.with_named(acl.from_mode(0o755), acl.GROUP, 995, 0)
    assert acl.named_perms(denied, acl.GROUP, 995) == 0
    assert AclEntry(acl.MASK, acl.UNDEFINED_ID, 5) in denied  # owning group still r-x
    with pytest.raises(ValueError, match="named"):
        acl.with_named(denied, acl.OTHER, 0, 0)


def test_others_may_traverse() -> None:
    assert acl.others_may_traverse(0o40711)
    assert not acl.others_may_traverse(0o40750)
