"""Pure parts of the Slurm executor: the batch script, state mapping, reconciliation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from caesar_common.apps.base import Step
from caesar_common.jobstate import JobState
from caesar_runner.adapters.slurmrestd import (
    SlurmJob,
    SubmitRequest,
    TokenSource,
    api_version,
    decode_exit_code,
)
from caesar_runner.executors.base import JobSpec
from caesar_runner.executors.slurm import (
    EXIT_RECORD,
    ExitRecord,
    batch_script,
    find_attempt,
    identifies,
    job_comment,
    job_name,
    outcome_of,
    outcome_of_record,
    parse_comment,
    parse_times,
    read_exit_record,
    stale_attempts,
    time_limit_minutes,
)
from caesar_runner.settings import RunnerSettings

HOSTILE = [
    "$(touch pwned-dollar)",
    "`touch pwned-backtick`",
    "a'b\"c",
    "semi; touch pwned-semi",
    "new\nline",
    "*",
    "--flag=$HOME",
    "",
    "tab\there & | > pwned-redirect",
]


def spec_for(job_dir: Path, steps: list[Step], **kw: object) -> JobSpec:
    fields: dict[str, object] = {
        "job_id": "0f3c",
        "owner": "anonymous",
        "attempt": 2,
        "app": "aegean",
        "steps": steps,
        "job_dir": job_dir,
        "wall_time_s": 3600,
        "cores": 2,
        "memory_mb": 2048,
    }
    fields.update(kw)
    return JobSpec(**fields)  # type: ignore[arg-type]


def dump_args_step(name: str = "dump") -> Step:
    code = "import json, os, sys; json.dump([sys.argv[1:], dict(os.environ)], open('args.json', 'w'))"
    return Step(name, (sys.executable, "-c", code, *HOSTILE))


def test_batch_script_quotes_every_value_and_runs_them_verbatim(tmp_path: Path) -> None:
    job_dir = tmp_path / "job dir with 'quotes' and $(spaces)"
    job_dir.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(job_dir), "X": "$(touch pwned-env) `x` 'y'"}
    spec = spec_for(job_dir, [dump_args_step()])
    script = batch_script(spec, [env], partition="p1", account="acc")
    (tmp_path / "job.sh").write_text(script)
    done = subprocess.run(["bash", str(tmp_path / "job.sh")], cwd=tmp_path, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    args, seen_env = json.loads((job_dir / "args.json").read_text())
    assert args == HOSTILE
    seen_env.pop("LC_CTYPE", None)  # Python's own C-locale coercion (PEP 538)
    assert seen_env == env  # env -i: exactly the sanitised environment, nothing inherited
    assert not list(tmp_path.rglob("pwned*"))
    record = read_exit_record(job_dir, 2)
    assert record is not None
    assert record.exit_code == 0
    assert record.step == -1


def test_batch_script_sets_the_slurm_options(tmp_path: Path) -> None:
    script = batch_script(spec_for(tmp_path, [dump_args_step()]), [{}], partition="p1", account="acc")
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --job-name=caesar-0f3c-2",
        "#SBATCH --comment=caesar-rest:0f3c:2",
        f"#SBATCH --chdir={tmp_path}",
        f"#SBATCH --output={tmp_path}/slurm-job.out",
        f"#SBATCH --error={tmp_path}/slurm-job.err",
        "#SBATCH --time=60",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=2048M",
        "#SBATCH --no-requeue",
        "#SBATCH --partition=p1",
        "#SBATCH --account=acc",
    ]


def test_batch_script_stops_at_the_first_failing_step_and_records_it(tmp_path: Path) -> None:
    steps = [
        Step("ok", ("true",)),
        Step("fails", ("sh", "-c", "exit 7")),
        Step("never", ("touch", "never-ran")),
    ]
    env = {"PATH": "/usr/bin:/bin"}
    (tmp_path / "job.sh").write_text(batch_script(spec_for(tmp_path, steps), [env] * 3))
    done = subprocess.run(["bash", str(tmp_path / "job.sh")], capture_output=True, timeout=30)
    assert done.returncode == 7
    assert not (tmp_path / "never-ran").exists()
    assert (tmp_path / "01-fails.stdout.log").exists()
    record = read_exit_record(tmp_path, 2)
    assert record is not None
    assert (record.attempt, record.exit_code, record.step) == (2, 7, 1)
    assert record.ended_at.endswith("Z")
    assert read_exit_record(tmp_path, 3) is None  # another attempt's record is not ours


@pytest.mark.parametrize(
    ("steps", "envs"),
    [
        ([Step("bad", ("A=1", "prog"))], [{}]),
        ([Step("ok", ("prog",))], [{"BAD-NAME": "x"}]),
        ([Step("ok", ("prog",))], []),
    ],
)
def test_batch_script_rejects_what_it_cannot_express_safely(
    tmp_path: Path, steps: list[Step], envs: list[dict[str, str]]
) -> None:
    with pytest.raises(ValueError, match=r"argv|environment"):
        batch_script(spec_for(tmp_path, steps), envs)


def test_exit_record_tolerates_torn_files(tmp_path: Path) -> None:
    (tmp_path / EXIT_RECORD).write_text('{"attempt": 2, "exit_')
    assert read_exit_record(tmp_path, 2) is None
    assert read_exit_record(tmp_path / "missing", 2) is None


@pytest.mark.parametrize(("wall", "minutes"), [(0, 1), (1, 1), (60, 1), (61, 2), (3600, 60)])
def test_time_limit_rounds_up_to_whole_minutes(wall: int, minutes: int) -> None:
    assert time_limit_minutes(wall) == minutes


def test_parse_times() -> None:
    assert parse_times("1m2.500s 0m0.250s") == pytest.approx(62.75)
    assert parse_times("") == 0.0


def job(state: str, exit_code: int | None = 0, signal: int | None = None, **kw: object) -> SlurmJob:
    fields: dict[str, object] = {"job_id": 7, "name": "n", "comment": "", "state": state}
    fields.update(exit_code=exit_code, signal=signal, **kw)
    return SlurmJob(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "ours", "retryable"),
    [
        ("COMPLETED", JobState.SUCCESS, False),
        ("FAILED", JobState.FAILURE, False),
        ("OUT_OF_MEMORY", JobState.FAILURE, False),
        ("TIMEOUT", JobState.TIMED_OUT, False),
        ("DEADLINE", JobState.TIMED_OUT, False),
        ("CANCELLED", JobState.CANCELED, False),
        ("NODE_FAIL", JobState.FAILURE, True),
        ("BOOT_FAIL", JobState.FAILURE, True),
        ("PREEMPTED", JobState.FAILURE, True),
    ],
)
def test_terminal_slurm_states_map_to_ours(
    state: str, ours: JobState, retryable: bool, tmp_path: Path
) -> None:
    outcome = outcome_of(job(state, exit_code=3), None, spec_for(tmp_path, []))
    assert outcome is not None
    assert (outcome.state, outcome.retryable) == (ours, retryable)


@pytest.mark.parametrize(
    "state", ["PENDING", "RUNNING", "COMPLETING", "SUSPENDED", "CONFIGURING", "REQUEUED"]
)
def test_unfinished_slurm_states_have_no_outcome(state: str, tmp_path: Path) -> None:
    assert outcome_of(job(state), None, spec_for(tmp_path, [])) is None


def test_failure_exit_code_prefers_the_scripts_record(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, [])
    record = ExitRecord(attempt=2, exit_code=42, step=1, cpu_s=1.0, ended_at="")
    with_record = outcome_of(job("FAILED", exit_code=1), record, spec)
    assert with_record is not None
    assert with_record.exit_code == 42
    assert "step 1" in with_record.reason
    killed = outcome_of(job("FAILED", exit_code=0, signal=9), None, spec)
    assert killed is not None
    assert killed.exit_code == -9


def test_outcome_from_the_record_alone() -> None:
    assert outcome_of_record(ExitRecord(1, 0, -1, 0.0, "")).state is JobState.SUCCESS
    failed = outcome_of_record(ExitRecord(1, 3, 0, 0.0, ""))
    assert (failed.state, failed.exit_code, failed.retryable) == (JobState.FAILURE, 3, False)
    assert outcome_of_record(ExitRecord(1, 143, -1, 0.0, "")).retryable


def test_comments_identify_job_and_attempt() -> None:
    assert parse_comment(job_comment("abc", 3)) == ("abc", 3)
    assert parse_comment("someone else's job") is None
    assert parse_comment("caesar-rest:abc:3; touch x") is None
    assert identifies(job("RUNNING", comment=job_comment("abc", 3)), "abc", 3)
    assert not identifies(job("RUNNING", comment=job_comment("abc", 2)), "abc", 3)
    # A site that strips comments: the name still identifies the attempt.
    assert identifies(job("RUNNING", name=job_name("abc", 3)), "abc", 3)


def test_reconciliation_prefers_the_live_job_and_finds_stale_attempts() -> None:
    jobs = [
        job("COMPLETED", job_id=20, comment=job_comment("abc", 2)),
        job("RUNNING", job_id=10, comment=job_comment("abc", 2)),
        job("RUNNING", job_id=5, comment=job_comment("abc", 1)),
        job("PENDING", job_id=6, comment=job_comment("other", 1)),
        job("COMPLETED", job_id=4, comment=job_comment("abc", 1)),
    ]
    found = find_attempt(jobs, "abc", 2)
    assert found is not None
    assert found.job_id == 10
    assert find_attempt(jobs, "abc", 3) is None
    assert [j.job_id for j in stale_attempts(jobs, "abc", 2)] == [5]
    only_finished = find_attempt(jobs[:1], "abc", 2)
    assert only_finished is not None
    assert only_finished.job_id == 20


def test_exit_code_is_a_wait_status_in_v0_0_38() -> None:
    assert decode_exit_code(768) == (3, None)
    assert decode_exit_code(15) == (0, 15)
    assert decode_exit_code(None) == (None, None)


def test_api_adapter_paths_and_body() -> None:
    api = api_version("v0.0.38")
    assert api.path("submit") == "/slurm/v0.0.38/job/submit"
    assert api.path("jobs") == "/slurm/v0.0.38/jobs"
    assert api.path("job", 12) == "/slurm/v0.0.38/job/12"
    req = SubmitRequest("#!/bin/bash\n", "n", "c", "/d", "/d/o", "/d/e", 5, 2, 100, {"A": "b"}, "p", "")
    body = api.submit_body(req)
    assert body["job"]["time_limit"] == 5
    assert body["job"]["partition"] == "p"
    assert "account" not in body["job"]
    parsed = api.parse_job({"job_id": 3, "job_state": "FAILED", "exit_code": 256, "comment": "x"})
    assert (parsed.job_id, parsed.state, parsed.exit_code) == (3, "FAILED", 1)
    with pytest.raises(ValueError, match="not supported"):
        api_version("v0.0.40")


def test_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("SLURM_JWT=one\n")
    tokens = TokenSource(token_file=path)
    assert tokens.get() == "one"
    path.write_text("two\n")
    os.utime(path, (1, 1))
    assert tokens.get() == "two"
    assert TokenSource("fixed").get() == "fixed"


def slurm_settings(**fields: Any) -> RunnerSettings:
    return RunnerSettings(executor="slurm", slurm_user="caesar", **fields)


def test_pool_follows_the_executor() -> None:
    assert slurm_settings().pool == "slurm"
    assert RunnerSettings().pool == "local"
    assert slurm_settings(pool="big").pool == "big"
    assert RunnerSettings().slurm_api_version == "v0.0.38"


def test_the_slurm_user_has_no_default() -> None:
    """Jobs never run as root because a setting was forgotten."""
    with pytest.raises(ValidationError, match="CAESAR_SLURM_USER is required"):
        RunnerSettings(executor="slurm")
    assert RunnerSettings().slurm_user == ""  # the local executor does not need one


def test_a_refused_token_is_read_again(tmp_path: Path) -> None:
    """Rotated within the file's mtime granularity: only a refusal makes us read it again."""
    path = tmp_path / "token"
    path.write_text("expired\n")
    os.utime(path, (5, 5))
    tokens = TokenSource(token_file=path)
    assert tokens.get() == "expired"
    path.write_text("fresh\n")
    os.utime(path, (5, 5))
    assert tokens.get() == "expired"  # unchanged as far as the mtime tells
    tokens.forget()
    assert tokens.get() == "fresh"


def test_a_slurm_runner_keeps_its_id_across_restarts() -> None:
    assert slurm_settings().runner_id == slurm_settings().runner_id
    assert slurm_settings().runner_id.endswith("-slurm")
    assert slurm_settings(runner_id="r1").runner_id == "r1"
