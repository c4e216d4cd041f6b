"""At a root runner's start: make the job users usable, prove it, or refuse to start.

Secure by default: a runner that is root runs jobs as job users, and if they cannot be
used (no job group, a range too small or clashing with real accounts, no ACLs on the
data file systems, an interpreter a job user cannot run) it stops with the reason
rather than fall back to running clients' code as root. Only
``CAESAR_JOBS_RUN_AS_RUNNER=true`` (unsafe) runs jobs as root on purpose.

What it sets up, all idempotent:

* the data root denies the job group outright (a named ACL entry ``---``: members do
  not fall through to "other"), so no upload is reachable however the api makes the
  owners' directories;
* the jobs root gets traverse-only for the job group, and so does each directory above
  it that others cannot traverse (e.g. a jobs root under a private ``/tmp`` directory);
* the lock directory of the job users (root only).

Then a probe runs the job interpreter as a job user, and checks from inside that the
jobs root is reachable and the data root is not. The one-time machine setup (the group,
traverse on the interpreter's directories) is ``scripts/jobuser.sh``.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from caesar_common.logging import get_logger
from caesar_runner.adapters.acl import AclUnsupported, grant_traverse_above, set_named
from caesar_runner.adapters.jobusers import JobUsers
from caesar_runner.domain.acl import EXECUTE, GROUP
from caesar_runner.domain.jobusers import (
    JobUserMode,
    UidRange,
    foreign_uids,
    job_user_mode,
    roots_overlap,
    setpriv_user_options,
)
from caesar_runner.settings import RunnerSettings

log = get_logger(__name__)

SETUP_HINT = (
    "run scripts/jobuser.sh as root, or set CAESAR_JOBS_RUN_AS_RUNNER=true (unsafe: jobs run as root)"
)
PROBE_TIMEOUT_S = 120.0
# Runs as a job user with the job interpreter: what every job needs, and what none may.
PROBE = """\
import os, sys
jobs, data = sys.argv[1], sys.argv[2]
os.stat(jobs)
try:
    os.stat(os.path.join(data, ".probe"))
except PermissionError:
    pass
except FileNotFoundError:
    sys.exit(f"a job user can enter the data root {data}")
import caesar_runner.finalize
"""


class JobUsersUnusable(RuntimeError):
    """The runner is root and cannot run jobs as job users: it must not start."""


def job_users_for(settings: RunnerSettings, bin_dir: Path) -> JobUsers | None:
    """The job users of a local runner, ``None`` when jobs run as the runner itself."""
    mode = job_user_mode(os.geteuid(), settings.jobs_run_as_runner)
    if mode is JobUserMode.RUNNER:
        return None
    if mode is JobUserMode.UNSAFE_RUNNER:
        log.warning("CAESAR_JOBS_RUN_AS_RUNNER is set: jobs run as root (unsafe)")
        return None
    return open_job_users(
        uids=UidRange.parse(settings.job_uids),
        group=settings.job_group,
        slots=settings.slots,
        state_dir=settings.job_users_state_dir,
        data_root=settings.data_root,
        jobs_root=settings.jobs_root,
        bin_dir=bin_dir,
    )


def _job_gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise JobUsersUnusable(f"the job group {group!r} does not exist: {SETUP_HINT}") from None


def _check_uids(uids: UidRange, gid: int, slots: int) -> None:
    if uids.size < slots:
        raise JobUsersUnusable(f"{slots} slots need as many job uids; CAESAR_JOB_UIDS={uids} has {uids.size}")
    primary: dict[int, int] = {}
    for uid in uids:
        try:
            primary[uid] = pwd.getpwuid(uid).pw_gid
        except KeyError:
            continue
    foreign = foreign_uids(uids, primary, gid)
    if foreign:
        names = ", ".join(f"{uid} ({pwd.getpwuid(uid).pw_name})" for uid in foreign[:5])
        raise JobUsersUnusable(
            f"CAESAR_JOB_UIDS={uids} includes accounts outside the job group: {names}; choose unused uids"
        )


def _prepare_state_dir(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(state_dir)
    if not state_dir.is_dir() or state_dir.is_symlink() or st.st_uid != 0:
        raise JobUsersUnusable(f"{state_dir} must be a directory owned by root (job user locks)")
    os.chmod(state_dir, 0o700)


def _prepare_roots(data_root: Path, jobs_root: Path, gid: int) -> None:
    for root in (data_root, jobs_root):
        root.mkdir(parents=True, exist_ok=True)
    real_data, real_jobs = data_root.resolve(), jobs_root.resolve()
    if roots_overlap(real_data, real_jobs):
        raise JobUsersUnusable(f"the data root {data_root} and the jobs root {jobs_root} must not nest")
    try:
        set_named(real_data, GROUP, gid, 0)
        set_named(real_jobs, GROUP, gid, EXECUTE)
        for directory in grant_traverse_above(jobs_root, gid):
            log.warning("job group granted traverse-only above the jobs root", path=str(directory))
    except AclUnsupported as exc:
        raise JobUsersUnusable(
            f"job users need POSIX ACLs on the data and jobs roots ({exc.filename or exc}); {SETUP_HINT}"
        ) from exc


def _probe(users: JobUsers, python: Path, data_root: Path, jobs_root: Path) -> None:
    with users.lease() as lease:
        argv = ["setpriv", *setpriv_user_options(lease.user), "--", str(python), "-c", PROBE]
        try:
            users.sweep(lease.user)  # the clean-up after each attempt runs the same way
            done = subprocess.run(
                [*argv, str(jobs_root), str(data_root)],
                cwd="/",
                env={"PATH": f"{python.parent}:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise JobUsersUnusable(f"a job user could not be started: {exc}; {SETUP_HINT}") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise JobUsersUnusable(f"job user {lease.user.uid} cannot run {python}: {tail}; {SETUP_HINT}")


def open_job_users(
    *,
    uids: UidRange,
    group: str,
    slots: int,
    state_dir: Path,
    data_root: Path,
    jobs_root: Path,
    bin_dir: Path,
    python: str = sys.executable,
) -> JobUsers:
    """Check and prepare everything job users need (see the module doc); refuse otherwise."""
    for tool in ("setpriv", "prlimit"):
        if shutil.which(tool) is None:
            raise JobUsersUnusable(f"{tool} (util-linux) is not installed")
    gid = _job_gid(group)
    _check_uids(uids, gid, slots)
    data_root, jobs_root = Path(os.path.abspath(data_root)), Path(os.path.abspath(jobs_root))
    _prepare_state_dir(state_dir)
    _prepare_roots(data_root, jobs_root, gid)
    users = JobUsers(uids, gid, state_dir, jobs_root, python)
    job_python = bin_dir / "python"
    _probe(users, job_python if job_python.exists() else Path(python), data_root, jobs_root)
    log.info("jobs run as job users", uids=str(uids), group=group, gid=gid)
    return users
