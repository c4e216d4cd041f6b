"""Exit codes of ``caesar``: stable, so scripts can branch on them.

One code per kind of outcome a script reacts to differently: retry later (server or
network), log in again (auth), fix the command (usage), give up on an id (not found),
or look at a job that ended badly.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    JOB_FAILED = 1
    """``wait``: the job ended in FAILURE, TIMED_OUT, ABORTED, CANCELED (or was DELETED)."""
    USAGE = 2
    """Bad arguments or options, or a request the server refused as malformed or conflicting."""
    AUTH = 3
    """Not logged in, the session expired, the token was refused (401) or the action is forbidden (403)."""
    NOT_FOUND = 4
    """No such job, file or app (or it belongs to someone else), or it was removed for good."""
    SERVER = 5
    """The server failed (5xx) or could not be reached."""


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 the job ended without success (wait); 2 usage error or request refused "
    "(400/409/413/422...); 3 authentication (not logged in, 401, 403); 4 not found (404, 410); "
    "5 server or network error (5xx, connection)."
)


def exit_code_for_status(status: int) -> ExitCode:
    """The exit code of an HTTP error answer."""
    if status in (401, 403):
        return ExitCode.AUTH
    if status in (404, 410):
        return ExitCode.NOT_FOUND
    if 400 <= status < 500:
        return ExitCode.USAGE
    return ExitCode.SERVER
