"""The local executor against real processes: exit codes, limits, wall time, cancel."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from caesar_common.apps.base import Step
from caesar_common.jobstate import JobState
from caesar_runner.executors.base import JobSpec
from caesar_runner.executors.local import LocalExecutor

PY = sys.executable


def spec(tmp_path: Path, *steps: Step, wall_time_s: int = 60) -> JobSpec:
    return JobSpec("job", "anonymous", 1, "test", steps, tmp_path, wall_time_s, 1, 256)


@pytest.fixture
def executor() -> LocalExecutor:
    return LocalExecutor(Path(PY).parent, slots=2, kill_grace_s=1.0)


async def test_success_reports_usage_and_logs(executor: LocalExecutor, tmp_path: Path) -> None:
    pids: list[int | None] = []

    async def started(pid: int | None) -> None:
        pids.append(pid)

    burn = (
        "import time; b=bytearray(60*2**20); t=time.process_time()\n"
        "while time.process_time()-t<0.3: pass\n"
        "print('done')"
    )
    result = await executor.run(
        spec(tmp_path, Step("burn", (PY, "-c", burn)), Step("two", (PY, "-c", "print('second')"))),
        started,
        asyncio.Event(),
    )
    assert result.state is JobState.SUCCESS
    assert result.exit_code == 0
    assert result.cpu_s >= 0.3
    assert result.peak_rss_bytes >= 60 * 2**20
    assert len(pids) == 1
    assert (tmp_path / "00-burn.stdout.log").read_text().strip() == "done"
    assert (tmp_path / "01-two.stdout.log").read_text().strip() == "second"


async def test_non_zero_exit_stops_the_job(executor: LocalExecutor, tmp_path: Path) -> None:
    result = await executor.run(
        spec(
            tmp_path,
            Step("fail", (PY, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)")),
            Step("never", (PY, "-c", "open('ran', 'w')")),
        ),
        _noop,
        asyncio.Event(),
    )
    assert result.state is JobState.FAILURE
    assert result.exit_code == 3
    assert "fail" in result.reason
    assert not (tmp_path / "ran").exists()
    assert (tmp_path / "00-fail.stderr.log").read_text() == "boom"


async def test_wall_time_kills_the_process_group(executor: LocalExecutor, tmp_path: Path) -> None:
    child = (
        "import subprocess,sys,time; "
        "subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)"
    )
    result = await executor.run(
        spec(tmp_path, Step("sleep", (PY, "-c", child)), wall_time_s=2), _noop, asyncio.Event()
    )
    assert result.state is JobState.TIMED_OUT
    assert 1.5 < result.elapsed_s < 10


async def test_cancel_stops_a_running_job(executor: LocalExecutor, tmp_path: Path) -> None:
    cancel = asyncio.Event()
    pids: list[int | None] = []

    async def started(pid: int | None) -> None:
        pids.append(pid)
        asyncio.get_running_loop().call_later(0.5, cancel.set)

    result = await executor.run(
        spec(tmp_path, Step("sleep", (PY, "-c", "import time; time.sleep(60)"))), started, cancel
    )
    assert result.state is JobState.CANCELED
    assert pids[0] is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


async def test_environment_is_sanitised(
    executor: LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAESAR_SECRET", "leak")
    code = "import os,json; json.dump(dict(os.environ), open('env.json','w'))"
    result = await executor.run(
        spec(tmp_path, Step("env", (PY, "-c", code), {"EXTRA": "1"})), _noop, asyncio.Event()
    )
    assert result.state is JobState.SUCCESS
    env = (tmp_path / "env.json").read_text()
    assert "CAESAR_SECRET" not in env
    assert '"EXTRA": "1"' in env


async def test_missing_executable_is_a_failure(executor: LocalExecutor, tmp_path: Path) -> None:
    result = await executor.run(spec(tmp_path, Step("x", ("/nonexistent/finder",))), _noop, asyncio.Event())
    assert result.state is JobState.FAILURE
    assert result.exit_code not in (0, None)


async def _noop(_: int | None) -> None:
    return None


FENCE_S = 2.0


async def test_a_stalled_runners_job_is_killed_by_the_guardian(tmp_path: Path) -> None:
    """The runner (this process) stops running its event loop for longer than the fence:
    the guardian, a process of its own, kills the job; the runner, running again, reports
    a retryable failure rather than the app's."""
    guarded = LocalExecutor(Path(PY).parent, slots=1, kill_grace_s=1.0, fence_s=FENCE_S)
    started = asyncio.Event()
    pids: list[int] = []

    async def on_started(pid: int | None) -> None:
        assert pid is not None
        pids.append(pid)
        started.set()

    try:
        run = asyncio.ensure_future(
            guarded.run(
                spec(tmp_path, Step("long", (PY, "-c", "import time; time.sleep(60)"))),
                on_started,
                asyncio.Event(),
            )
        )
        await started.wait()
        # The fault itself, not a wait for an event: the whole event loop stalls, as in a
        # runner frozen by SIGSTOP or blocked on a hung filesystem.
        time.sleep(FENCE_S + 2.5)
        result = await asyncio.wait_for(run, 10)
    finally:
        guarded.close()
    assert result.state is JobState.FAILURE
    assert result.retryable
    assert "guardian killed the job" in result.reason
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


async def test_a_healthy_runners_long_job_is_left_alone(tmp_path: Path) -> None:
    guarded = LocalExecutor(Path(PY).parent, slots=1, kill_grace_s=1.0, fence_s=FENCE_S)
    try:
        result = await guarded.run(
            spec(
                tmp_path,
                Step("longer-than-the-fence", (PY, "-c", f"import time; time.sleep({FENCE_S + 1.5})")),
            ),
            _noop,
            asyncio.Event(),
        )
    finally:
        guarded.close()
    assert result.state is JobState.SUCCESS
