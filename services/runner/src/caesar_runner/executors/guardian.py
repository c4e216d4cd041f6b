"""A dead man's switch for local job processes: they never outlive a stalled runner by long.

A runner that is frozen (SIGSTOP, a stalled event loop, a process blocked on a hung
filesystem) cannot fence itself: it is not running. Its job processes are, in their own
sessions, while the monitor declares the runner lost and the scheduler starts the next
attempt elsewhere. The guardian is a small process of its own (its own session, so a
signal to the runner's process group does not reach it) that the runner keeps alive by
touching a lease file from its event loop. When the lease is older than the fence time
(shorter than the monitor's timeout), the guardian kills every job process group the
runner registered and marks each as killed, so the runner, once it runs again, reports
the attempt as retryable rather than as the app's failure. The guardian also ends the
jobs, and itself, when the runner is gone.

The guardian side (:func:`watch`) imports only the standard library: it starts in a few
milliseconds and shares nothing with the runner but a directory.

    python -m caesar_runner.executors.guardian <state_dir> <fence_s> <runner_pid>
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEASE = "lease"
GROUPS = "groups"
KILLED = "killed"
POLL_S = 0.2


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc`` (``None`` once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def kill_registered(state_dir: Path, runner_pid: int) -> list[int]:
    """Kill every registered job process group that is still the runner's child.

    The parent check keeps a recycled pid (a job that ended while the runner could not
    unregister it) from ever being signalled.
    """
    killed = []
    for entry in sorted((state_dir / GROUPS).iterdir()):
        pgid = int(entry.name)
        if _parent_of(pgid) == runner_pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            (state_dir / KILLED / entry.name).touch()
            killed.append(pgid)
        entry.unlink(missing_ok=True)
    return killed


def watch(state_dir: Path, fence_s: float, runner_pid: int) -> None:
    """The guardian's loop: kill the runner's jobs when its lease is stale or it is gone."""
    lease = state_dir / LEASE
    while True:
        if os.getppid() != runner_pid:  # the runner died: we were handed to another parent
            kill_registered(state_dir, runner_pid)
            shutil.rmtree(state_dir, ignore_errors=True)
            return
        with contextlib.suppress(FileNotFoundError):
            stale_s = time.time() - lease.stat().st_mtime
            if stale_s > fence_s:
                for pgid in kill_registered(state_dir, runner_pid):
                    print(
                        f"guardian: runner {runner_pid} silent for {stale_s:.1f} s; killed job group {pgid}",
                        file=sys.stderr,
                        flush=True,
                    )
        time.sleep(POLL_S)


class Guardian:
    """The runner's side: start the guardian, keep its lease fresh, register job groups."""

    def __init__(self, fence_s: float) -> None:
        self.fence_s = fence_s
        self.state_dir = Path(tempfile.mkdtemp(prefix="caesar-guardian-"))
        (self.state_dir / GROUPS).mkdir()
        (self.state_dir / KILLED).mkdir()
        self._process: subprocess.Popen[bytes] | None = None
        self._keeper: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start the guardian and the lease keeper once (from the event loop)."""
        if self._process is None or self._process.poll() is not None:
            self.touch()
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(self.state_dir), str(self.fence_s), str(os.getpid())],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a signal to the runner's group must not stop it
                close_fds=True,
            )
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep_lease())

    def touch(self) -> None:
        (self.state_dir / LEASE).touch()

    async def _keep_lease(self) -> None:
        # Touched by the event loop itself: a loop that stops running stops the touches.
        interval = min(0.5, self.fence_s / 4)
        while True:
            self.touch()
            await asyncio.sleep(interval)

    def register(self, pgid: int) -> None:
        (self.state_dir / GROUPS / str(pgid)).touch()

    def release(self, pgid: int) -> bool:
        """Unregister a group that ended; whether the guardian killed it."""
        (self.state_dir / GROUPS / str(pgid)).unlink(missing_ok=True)
        marker = self.state_dir / KILLED / str(pgid)
        killed = marker.exists()
        marker.unlink(missing_ok=True)
        return killed

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        shutil.rmtree(self.state_dir, ignore_errors=True)


if __name__ == "__main__":
    watch(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
