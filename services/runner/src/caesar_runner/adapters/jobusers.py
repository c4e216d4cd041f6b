"""Leasing job users: one uid per running attempt, host-wide, with crash recovery.

A uid is taken by an exclusive ``flock`` on ``<state_dir>/<uid>``: every runner of the
host shares the range and never hands out a uid another one holds, and a runner that
dies loses its locks with its process. The lock file also holds the :class:`Handover`
of the attempt that uid runs (written, and synced, before anything is changed). Whoever
takes the uid next and finds a record left there first does what the dead runner
could not: kill the uid's processes and give the directory back.

Giving back starts with the sweep: ``kill(-1, SIGKILL)`` from a process running as the
job user, which the kernel delivers to every process of that uid at once (a fork in
flight is aborted), including those that left the job's process group; with
``--no-new-privs`` none of them can have changed its uid. Only then is the directory
walked, when nothing can change it any more.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from caesar_common.layout import JOB_TMP_DIR
from caesar_common.logging import get_logger
from caesar_runner.adapters.acl import grant_traverse_above, set_named
from caesar_runner.adapters.handover import (
    link_source,
    reclaim_tree,
    restore_link,
    scrub_shared_tmp,
    stage_readable,
)
from caesar_runner.domain.acl import EXECUTE, GROUP
from caesar_runner.domain.jobusers import Handover, JobUser, UidRange, dirs_between, setpriv_user_options
from caesar_runner.domain.process import JOB_DIR_MODE

log = get_logger(__name__)

# Runs as the job user: SIGKILL to every process of that uid but itself. Twice, as
# insurance; the first already reaches them all (see the module doc).
SWEEP = """\
import os, signal
for _ in range(2):
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        break
"""
SWEEP_TIMEOUT_S = 30.0


class NoFreeJobUser(RuntimeError):
    """Every uid of the range runs an attempt (on this runner or another of the host)."""


class JobUsers:
    """The job users of this runner: uid range, group, lock directory, jobs root."""

    def __init__(self, uids: UidRange, gid: int, state_dir: Path, jobs_root: Path, python: str) -> None:
        self.uids = uids
        self.gid = gid
        self.state_dir = state_dir
        self.jobs_root = jobs_root
        self._python = python
        self._turn = itertools.count(os.getpid())  # runners of a host start at different uids

    def acquire(self) -> JobUserLease:
        """Lock a free uid (recovering what a dead holder left); :class:`NoFreeJobUser` if none."""
        for uid in self.uids.candidates(next(self._turn)):
            fd = os.open(
                self.state_dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            lease = JobUserLease(self, JobUser(uid, self.gid), fd)
            try:
                lease.recover()
            except BaseException:
                lease.release()
                raise
            return lease
        raise NoFreeJobUser(f"all {self.uids.size} job users ({self.uids}) are running jobs")

    @contextmanager
    def lease(self) -> Iterator[JobUserLease]:
        lease = self.acquire()
        try:
            yield lease
        finally:
            lease.give_back()

    def sweep(self, user: JobUser) -> None:
        """Kill every process of ``user`` (see the module doc)."""
        subprocess.run(
            ["setpriv", *setpriv_user_options(user), "--", self._python, "-I", "-S", "-c", SWEEP],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},
            timeout=SWEEP_TIMEOUT_S,
            check=True,
            close_fds=True,
        )

    def grant_path(self, attempt_dir: Path) -> None:
        """Traverse-only for the job group on the owner, job and attempts directories,
        and again on the closed directories above the jobs root (a chmod there voids it).

        A named group entry also withholds listing from job users where "other" may list
        (an owner's directory made with the default mode): they learn no job ids there.
        """
        for directory in grant_traverse_above(self.jobs_root, self.gid):
            log.warning("traverse grant above the jobs root was lost; granted again", path=str(directory))
        for directory in dirs_between(self.jobs_root, attempt_dir):
            set_named(directory, GROUP, self.gid, EXECUTE)


class JobUserLease:
    """One locked uid: hand an attempt to it, then give everything back and unlock."""

    def __init__(self, users: JobUsers, user: JobUser, fd: int) -> None:
        self.users = users
        self.user = user
        self._fd: int | None = fd
        self._handover: Handover | None = None

    # -- the record in the lock file ---------------------------------------------------

    def _write(self, record: Handover | None) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        if record is not None:
            os.pwrite(self._fd, record.to_bytes(), 0)
            os.fsync(self._fd)

    def recover(self) -> None:
        """Undo what a dead holder of this uid left (its record is still in the file)."""
        assert self._fd is not None
        data = os.pread(self._fd, 1 << 16, 0)
        if not data:
            return
        left = Handover.from_bytes(data)
        where = left.attempt_dir if left is not None else None
        log.warning("recovering a job user left by a dead runner", uid=self.user.uid, attempt_dir=where)
        self._handover = left
        self.give_back(release=False)

    # -- hand over and give back -------------------------------------------------------

    def hand_over(self, attempt_dir: Path, staged: Path | None) -> None:
        """Make ``attempt_dir`` the job user's, and the staged input readable to it."""
        source = link_source(staged) if staged is not None else None
        record = Handover(
            attempt_dir=str(attempt_dir),
            gid=os.stat(attempt_dir).st_gid,
            staged=str(staged) if source is not None else None,
            source=str(source) if source is not None else None,
        )
        self._handover = record
        self._write(record)
        self.users.grant_path(attempt_dir)
        if staged is not None and source is not None:
            how = stage_readable(staged, source, self.user)
            log.debug("input staged for the job user", uid=self.user.uid, how=how)
        scratch = attempt_dir / JOB_TMP_DIR
        if scratch.is_dir() and not scratch.is_symlink():
            os.chown(scratch, self.user.uid, -1, follow_symlinks=False)
        os.chown(attempt_dir, self.user.uid, -1, follow_symlinks=False)

    def give_back(self, *, release: bool = True) -> None:
        """Kill the uid's processes, take the directory back, restore the input link; unlock.

        A step that fails is logged and the record stays in the lock file, so the next
        holder of the uid tries again before it runs anything.
        """
        try:
            self.users.sweep(self.user)
            record = self._handover
            if record is not None:
                attempt_dir = Path(record.attempt_dir)
                if attempt_dir.is_dir():
                    reclaim_tree(attempt_dir, self.user.uid, record.gid, JOB_DIR_MODE)
                if record.staged is not None and record.source is not None:
                    restore_link(Path(record.staged), Path(record.source), self.user.uid)
            scrub_shared_tmp(self.user.uid)
            self._handover = None
            if self._fd is not None:
                self._write(None)
        except (OSError, subprocess.SubprocessError) as exc:
            log.error("could not take an attempt back from its job user", uid=self.user.uid, error=str(exc))
        finally:
            if release:
                self.release()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # and with it the lock
            self._fd = None
