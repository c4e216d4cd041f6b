"""Human-readable status messages of the v1.0 job status, one per state.

Old clients print ``status`` to their users; the wording for a successful run
(``Process terminated with success``) and a failed one (``Process terminated with return
code N``) is the old service's.
"""

from __future__ import annotations

from caesar_common.jobstate import JobState

_MESSAGES: dict[JobState, str] = {
    JobState.PENDING: "Job submitted, waiting to be queued",
    JobState.HELD: "Job is held, it will be queued by itself",
    JobState.QUEUED: "Job is queued",
    JobState.STARTED: "Job started",
    JobState.RUNNING: "Job is running",
    JobState.SUCCESS: "Process terminated with success",
    JobState.TIMED_OUT: "Process killed after exceeding its wall-time limit",
    JobState.CANCELED: "Job canceled by the user",
    JobState.ABORTED: "Job aborted",
}


def status_message(state: JobState, *, exit_code: int | None = None, reason: str = "") -> str:
    """The ``status`` text for a job in ``state``.

    A failure names its exit code (or the signal, for a negative code, as the old service
    did); a reason given by the system (why it aborted, why the runner was lost) is added.
    """
    if state is JobState.FAILURE:
        if exit_code is None:
            message = "Process failed"
        elif exit_code < 0:
            message = f"Process terminated with SIG {-exit_code}"
        else:
            message = f"Process terminated with return code {exit_code}"
    else:
        message = _MESSAGES[state]
    if reason and state is not JobState.SUCCESS:
        message = f"{message}: {reason}"
    return message
