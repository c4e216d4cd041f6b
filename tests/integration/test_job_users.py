"""A root runner's local jobs run as job users, and can reach only their own files.

Real jobs through the real :class:`LocalExecutor`, built from the runner's settings as
``python -m caesar_runner`` builds it (same uid range, group and lock directory as any
other runner of this host, so these tests share the uids safely with them). Each job is
a small Python program that tries what a hostile finder would and reports what the
kernel let it do. Needs root and the job group (``scripts/jobuser.sh``).

Ordering between the test and its jobs uses FIFOs in the attempt directories: opening
one blocks until the other side opens it, so no step waits on a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from caesar_common.apps.base import Step
from caesar_common.jobstate import JobState
from caesar_common.layout import upload_path
from caesar_runner.adapters.acl import ACCESS_ACL
from caesar_runner.adapters.jobuser_setup import JobUsersUnusable, job_users_for, open_job_users
from caesar_runner.adapters.jobusers import JobUsers
from caesar_runner.adapters.outputs import prepare_attempt_dir, stage_input
from caesar_runner.domain.jobusers import JobUser, UidRange, setpriv_user_options
from caesar_runner.executors.base import ExecutionResult, JobSpec
from caesar_runner.executors.local import LocalExecutor
from caesar_runner.settings import RunnerSettings

PY = sys.executable
BIN = Path(PY).parent
GROUP = RunnerSettings().job_group


def _group_exists() -> bool:
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        return False
    return True


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="job users are a root runner's"),
    pytest.mark.skipif(not _group_exists(), reason=f"no group {GROUP}: run scripts/jobuser.sh"),
]

# What a job tries. argv: a JSON object of name -> [operation, path]; the verdicts go to
# report.json in the job's own directory. A FIFO named "go" (if given) is opened first,
# "end" last: the test holds the job there while another job runs.
PROBE = """
import json, os, sys
checks = json.loads(sys.argv[1])
fifo = lambda name: os.path.exists(name) and open(name).read()
fifo("go")
out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "euid": os.geteuid()}
for name, (op, path) in checks.items():
    try:
        if op == "read":
            with open(path, "rb") as fh:
                fh.read(1)
        elif op == "list":
            os.listdir(path)
        elif op == "write":
            with open(path, "ab") as fh:
                fh.write(b"x")
        elif op == "stat":
            os.stat(path)
        out[name] = "ok"
    except OSError as exc:
        out[name] = type(exc).__name__
with open("report.json", "w") as fh:
    json.dump(out, fh)
fifo("end")
"""


@dataclass
class Host:
    data_root: Path
    jobs_root: Path
    secret: Path
    users: JobUsers
    executor: LocalExecutor

    def upload(self, owner: str, content: bytes = b"SIMPLE  = T") -> Path:
        path = upload_path(self.data_root, owner, uuid.uuid4().hex, "fits")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    def attempt(self, owner: str, source: Path) -> tuple[Path, Path]:
        directory = prepare_attempt_dir(self.jobs_root, owner, str(uuid.uuid4()), 1)
        return directory, stage_input(source, directory)

    def spec(self, directory: Path, staged: Path, checks: dict[str, list[str]], *steps: Step) -> JobSpec:
        probe = Step("probe", (str(BIN / "python"), "-c", PROBE, json.dumps(checks)))
        return JobSpec("job", "alice", 1, "test", (*steps, probe), directory, 60, 1, 256, staged_input=staged)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """A data and a jobs root as a root runner sees them, and its executor with job users."""
    data_root, jobs_root = tmp_path / "data", tmp_path / "jobs"
    secret = tmp_path / "secrets.env"  # stands in for the service's credentials file
    secret.write_text("CAESAR_MONGO_URL=mongodb://runner:s3cret@db/\n")
    secret.chmod(0o600)
    # The runner's own environment holds its credentials (readable in /proc by its uid).
    monkeypatch.setenv("CAESAR_PROBE_SECRET", "s3cret")
    settings = RunnerSettings(data_root=data_root, jobs_root=jobs_root, slots=2)
    users = job_users_for(settings, BIN)
    assert users is not None
    executor = LocalExecutor(BIN, slots=2, kill_grace_s=1.0, job_users=users)
    yield Host(data_root, jobs_root, secret, users, executor)
    executor.close()


async def _noop(_: int | None) -> None:
    return None


def _report(directory: Path) -> dict[str, object]:
    return dict(json.loads((directory / "report.json").read_text()))


def _alive_uids() -> set[int]:
    """Real uids of every live (not zombie) process of the host."""
    uids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            status = (entry / "status").read_text()
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if not fields["State"].strip().startswith("Z"):
                uids.add(int(fields["Uid"].split()[0]))
    return uids


def _named_user_entries(path: Path) -> list[int]:
    from caesar_runner.domain import acl

    try:
        entries = acl.decode(os.getxattr(path, ACCESS_ACL))
    except OSError:
        return []
    return [e.qualifier for e in entries if e.tag == acl.USER]


async def test_a_job_reaches_its_input_and_directory_and_nothing_else(host: Host) -> None:
    mine = host.upload("alice")
    mode_before = mine.stat().st_mode
    theirs = host.upload("bob")
    other_dir, _ = host.attempt("bob", theirs)
    (other_dir / "catalog.csv").write_text("bob's sources\n")
    directory, staged = host.attempt("alice", mine)
    checks = {
        "own_input": ["read", str(staged)],
        "own_dir": ["write", str(directory / "result.txt")],
        "own_scratch": ["write", str(directory / "tmp" / "cache")],
        "input_is_read_only": ["write", str(staged)],
        "upload_by_its_path": ["read", str(mine)],
        "other_owner_upload": ["read", str(theirs)],
        "data_root": ["list", str(host.data_root)],
        "other_owner_dir": ["stat", str(theirs.parent)],
        "other_attempt_file": ["read", str(other_dir / "catalog.csv")],
        "other_attempt_dir": ["list", str(other_dir)],
        "jobs_of_the_owner": ["list", str(directory.parent.parent.parent)],
        "service_secret": ["read", str(host.secret)],
        "runner_environment": ["read", f"/proc/{os.getpid()}/environ"],
        "lock_directory": ["list", str(host.users.state_dir)],
    }
    result = await host.executor.run(host.spec(directory, staged, checks), _noop, asyncio.Event())
    assert result.state is JobState.SUCCESS, result
    report = _report(directory)
    assert report["uid"] in host.users.uids
    assert report["euid"] == report["uid"] != 0
    assert report["gid"] == host.users.gid
    assert report["groups"] == []
    assert {k: report[k] for k in ("own_input", "own_dir", "own_scratch")} == dict.fromkeys(
        ("own_input", "own_dir", "own_scratch"), "ok"
    )
    denied = set(checks) - {"own_input", "own_dir", "own_scratch"}
    assert {k: report[k] for k in denied} == dict.fromkeys(denied, "PermissionError")
    assert mine.read_bytes() == b"SIMPLE  = T"  # not written through the link
    # After the attempt: everything is root's again, the input a symlink, no grant left.
    for path in [directory, *directory.rglob("*")]:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (0, 0), path
    assert stat.S_IMODE(directory.stat().st_mode) == 0o750
    assert staged.is_symlink()
    assert staged.resolve() == mine.resolve()
    assert _named_user_entries(mine) == []
    assert mine.stat().st_mode == mode_before
    assert report["uid"] not in _alive_uids()


async def test_a_grant_above_the_jobs_root_voided_by_a_chmod_is_restored_at_hand_over(
    tmp_path: Path, host: Host
) -> None:
    """A chmod of a closed directory above the jobs root (a new pytest session does one
    on its temporary root) resets the ACL mask: the job group's traverse grant is void
    until the next hand-over writes it again, and the job still reaches its directory."""
    closed = tmp_path.parent
    closed.chmod(0o700)  # the grant made at start is void from here
    directory, staged = host.attempt("alice", host.upload("alice"))
    checks = {"own_input": ["read", str(staged)], "own_dir": ["write", str(directory / "result.txt")]}
    result = await host.executor.run(host.spec(directory, staged, checks), _noop, asyncio.Event())
    assert result.state is JobState.SUCCESS, result
    report = _report(directory)
    assert (report["own_input"], report["own_dir"]) == ("ok", "ok")


async def test_an_input_that_cannot_be_linked_is_copied_read_only(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uploads on another file system than the jobs root: a read-only copy for the attempt."""
    import errno

    def no_link(*_: object, **__: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    mine = host.upload("alice", b"COPIED")
    directory, staged = host.attempt("alice", mine)
    peek = (
        "import os, sys; st = os.stat(sys.argv[1]); "
        "print(st.st_uid, st.st_gid, oct(st.st_mode & 0o7777), st.st_ino, open(sys.argv[1]).read())"
    )
    checks = {"input_is_read_only": ["write", str(staged)]}
    step = Step("peek", (PY, "-c", peek, str(staged)))
    result = await host.executor.run(host.spec(directory, staged, checks, step), _noop, asyncio.Event())
    assert result.state is JobState.SUCCESS, result
    uid, gid, mode, inode, text = (directory / "00-peek.stdout.log").read_text().split()
    assert (int(uid), int(gid), mode, text) == (0, host.users.gid, "0o440", "COPIED")
    assert int(inode) != mine.stat().st_ino  # a copy, not the upload
    assert _report(directory)["input_is_read_only"] == "PermissionError"
    assert staged.is_symlink()
    assert staged.resolve() == mine.resolve()


async def test_concurrent_jobs_get_different_uids_and_cannot_read_each_other(host: Host) -> None:
    """Both jobs are held alive (FIFOs) while each tries the other's directory."""
    dirs = [host.attempt("alice", host.upload("alice")) for _ in range(2)]
    for directory, _ in dirs:
        for name in ("go", "end"):
            os.mkfifo(directory / name, 0o666)
            os.chmod(directory / name, 0o666)  # noqa: S103 (the job user opens it)
    specs = [
        host.spec(
            directory,
            staged,
            {
                "other_dir": ["list", str(dirs[1 - i][0])],
                "other_input": ["read", str(dirs[1 - i][1])],
                "other_scratch": ["stat", str(dirs[1 - i][0] / "tmp")],
            },
        )
        for i, (directory, staged) in enumerate(dirs)
    ]
    runs = [asyncio.ensure_future(host.executor.run(s, _noop, asyncio.Event())) for s in specs]

    async def release(directory: Path, name: str) -> None:
        """Open the FIFO for writing (returns once the job waits on it), then close it."""
        opened = asyncio.ensure_future(asyncio.to_thread(os.open, directory / name, os.O_WRONLY))
        done, _ = await asyncio.wait({opened, *runs}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert opened in done, [r.result() for r in runs if r.done()]
        os.close(opened.result())

    try:
        for directory, _ in dirs:  # both running, both handed over
            await release(directory, "go")
        for directory, _ in dirs:  # both probed while the other was still running
            await release(directory, "end")
        results: list[ExecutionResult] = await asyncio.wait_for(asyncio.gather(*runs), 60)
    finally:
        for directory, _ in dirs:  # a job that failed early leaves a writer waiting
            for name in ("go", "end"):
                with contextlib.suppress(OSError):
                    os.close(os.open(directory / name, os.O_RDONLY | os.O_NONBLOCK))
    assert [r.state for r in results] == [JobState.SUCCESS, JobState.SUCCESS], results
    reports = [_report(directory) for directory, _ in dirs]
    assert reports[0]["uid"] != reports[1]["uid"]
    for report in reports:
        assert report["uid"] in host.users.uids
        for check in ("other_dir", "other_input", "other_scratch"):
            assert report[check] == "PermissionError", report


async def test_what_a_job_leaves_behind_dies_and_goes_with_it(host: Host) -> None:
    """A daemon that left the job's process group, files in /tmp: gone after the attempt."""
    directory, staged = host.attempt("alice", host.upload("alice"))
    left = Path("/tmp") / f"caesar-job-leftover-{uuid.uuid4().hex}"
    daemon = (
        "import os, sys\n"
        "open(sys.argv[1], 'w').write('copied input')\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        open('daemon.pid', 'w').write(str(os.getpid()))\n"
        "        os.kill(os.getpid(), 19)  # SIGSTOP: alive until killed\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "while not os.path.exists('daemon.pid'): os.sched_yield()\n"
    )
    step = Step("daemonise", (PY, "-c", daemon, str(left)))
    result = await host.executor.run(host.spec(directory, staged, {}, step), _noop, asyncio.Event())
    assert result.state is JobState.SUCCESS, result
    pid = int((directory / "daemon.pid").read_text())
    state = Path(f"/proc/{pid}/stat")
    assert not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert not left.exists()


async def test_a_dead_runners_job_user_is_recovered_before_reuse(tmp_path: Path, host: Host) -> None:
    """The runner dies mid-attempt (its lock goes, its record stays): the next holder of
    the uid kills what still runs and takes the directory back before anything else."""
    # A private lock directory and a uid outside the runners' range: this test alone
    # plays both the dead runner and its successor.
    uid = host.users.uids.last + 1000
    users = JobUsers(UidRange(uid, uid), host.users.gid, tmp_path / "locks", host.jobs_root, PY)
    users.state_dir.mkdir(mode=0o700)
    mine = host.upload("alice")
    directory, staged = host.attempt("alice", mine)
    lease = users.acquire()
    lease.hand_over(directory, staged)
    user = JobUser(uid, users.gid)
    orphan = subprocess.Popen(
        ["setpriv", *setpriv_user_options(user), "--", PY, "-c", "import os; os.kill(os.getpid(), 19)"],
        start_new_session=True,
    )
    assert directory.stat().st_uid == uid
    assert not staged.is_symlink()
    lease.release()  # the runner dies: no give-back
    assert (users.state_dir / str(uid)).read_bytes()  # the record stays

    successor = users.acquire()
    try:
        assert successor.user.uid == uid
        assert orphan.wait(timeout=30) == -9
        assert directory.stat().st_uid == 0
        assert staged.is_symlink()
        assert _named_user_entries(mine) == []
        assert (users.state_dir / str(uid)).read_bytes() == b""
    finally:
        successor.give_back()


async def test_the_uid_range_is_shared_by_lock_not_by_luck(tmp_path: Path, host: Host) -> None:
    users = JobUsers(UidRange(70001, 70002), host.users.gid, tmp_path / "locks", host.jobs_root, PY)
    users.state_dir.mkdir(mode=0o700)
    first, second = users.acquire(), users.acquire()
    try:
        assert {first.user.uid, second.user.uid} == {70001, 70002}
        with pytest.raises(RuntimeError, match="job users"):
            users.acquire()
    finally:
        first.give_back()
        second.give_back()
    users.acquire().give_back()  # free again


# -- refusing to start ---------------------------------------------------------------------


def _open(tmp_path: Path, **overrides: object) -> JobUsers:
    args: dict[str, object] = {
        "uids": UidRange.parse(RunnerSettings().job_uids),
        "group": GROUP,
        "slots": 2,
        "state_dir": RunnerSettings().job_users_state_dir,
        "data_root": tmp_path / "data",
        "jobs_root": tmp_path / "jobs",
        "bin_dir": BIN,
    }
    args.update(overrides)
    return open_job_users(**args)  # type: ignore[arg-type]


def test_refuses_without_the_job_group(tmp_path: Path) -> None:
    with pytest.raises(JobUsersUnusable, match=r"group .no-such-group. does not exist.*jobuser\.sh"):
        _open(tmp_path, group="no-such-group")


def test_refuses_fewer_uids_than_slots(tmp_path: Path) -> None:
    with pytest.raises(JobUsersUnusable, match="4 slots need as many job uids"):
        _open(tmp_path, uids=UidRange(70001, 70003), slots=4)


def test_refuses_uids_of_real_accounts(tmp_path: Path) -> None:
    with pytest.raises(JobUsersUnusable, match="accounts outside the job group"):
        _open(tmp_path, uids=UidRange(65534, 65534), slots=1)  # nobody


def test_refuses_nested_roots(tmp_path: Path) -> None:
    with pytest.raises(JobUsersUnusable, match="must not nest"):
        _open(tmp_path, jobs_root=tmp_path / "data" / "jobs")


def test_refuses_an_interpreter_a_job_user_cannot_run(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "python").symlink_to(PY)
    with pytest.raises(JobUsersUnusable, match=r"cannot run .*private/python.*jobuser\.sh"):
        _open(tmp_path, bin_dir=private)


def test_a_root_runner_with_unusable_job_users_exits_with_the_reason(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAESAR_")}
    env.update(
        CAESAR_JOB_GROUP="no-such-group",
        CAESAR_DATA_ROOT=str(tmp_path / "data"),
        CAESAR_JOBS_ROOT=str(tmp_path / "jobs"),
        # Never reached: the runner must refuse before it connects anywhere.
        CAESAR_AMQP_URL="amqp://nobody:nothing@127.0.0.1:1/",
        CAESAR_MONGO_URL="mongodb://127.0.0.1:1/",
    )
    done = subprocess.run(
        [PY, "-m", "caesar_runner"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to start" in done.stderr
    assert "CAESAR_JOBS_RUN_AS_RUNNER" in done.stderr


def test_the_unsafe_opt_out_runs_jobs_as_the_runner(tmp_path: Path) -> None:
    settings = RunnerSettings(data_root=tmp_path / "d", jobs_root=tmp_path / "j", jobs_run_as_runner=True)
    assert job_users_for(settings, BIN) is None
