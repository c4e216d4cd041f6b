"""Job users: which uid runs a job, as whom, and what it may reach (pure decisions).

A runner started as root must not run a client's job as root: a finder reading a
crafted image, or a pickle in a catalogue, would own the host. Each attempt runs as a
job user instead: a numeric uid of a configured range (no passwd entry needed) with
the job group as its only group. One uid per running attempt, never shared by two at
once, so concurrent jobs cannot read each other's directories; the uid is locked per
host (:mod:`caesar_runner.adapters.jobusers`), so several runners on a host can share
the range. The job user owns its attempt directory while the attempt runs and gets
nothing else: traverse-only on the directories above it, read on its input (a link in
that directory), no way into the uploads.

The I/O (locks, ACLs, chown, staging) is in the adapters; this module decides.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

# The highest uid accepted: 2^31 - 2 keeps clear of (uid_t)-1 and of tools that
# store ids as signed 32-bit numbers.
MAX_UID: Final = 2**31 - 2


class JobUserMode(enum.Enum):
    JOB_USERS = "job-users"
    """Root runner: every attempt runs as a job user."""
    RUNNER = "runner"
    """Not root: jobs run as the runner's own (unprivileged) user, nothing to switch."""
    UNSAFE_RUNNER = "unsafe-runner"
    """Root runner told to run jobs as itself (``CAESAR_JOBS_RUN_AS_RUNNER``)."""


def job_user_mode(euid: int, run_as_runner: bool) -> JobUserMode:
    """How jobs run for a runner with effective uid ``euid``: secure unless told otherwise."""
    if euid != 0:
        return JobUserMode.RUNNER
    return JobUserMode.UNSAFE_RUNNER if run_as_runner else JobUserMode.JOB_USERS


@dataclass(frozen=True)
class UidRange:
    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> UidRange:
        """``"first-last"`` (inclusive), e.g. ``"60600-60727"``; a single uid is a range of one."""
        first_text, sep, last_text = text.strip().partition("-")
        try:
            first = int(first_text)
            last = int(last_text) if sep else first
        except ValueError:
            raise ValueError(f"job uids {text!r}: expected first-last, e.g. 60600-60727") from None
        if not 0 < first <= last <= MAX_UID:
            raise ValueError(f"job uids {text!r}: need 0 < first <= last <= {MAX_UID} (never root)")
        return cls(first, last)

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self.first <= uid <= self.last

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.first, self.last + 1))

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def candidates(self, start: int) -> list[int]:
        """Every uid once, starting at the ``start``-th (wrapping).

        The caller rotates ``start``, so a uid just given back is the last to be taken
        again (least recently used): a leftover of its previous job, were the clean-up
        ever to miss one, meets a new job as late as possible.
        """
        offset = start % self.size
        return [self.first + (offset + i) % self.size for i in range(self.size)]


def foreign_uids(uids: UidRange, primary_gids: dict[int, int], job_gid: int) -> list[int]:
    """Uids of the range that belong to someone else: a passwd entry outside the job group.

    ``primary_gids`` maps each uid of the range that has a passwd entry to its primary
    group. An operator may name job users (``useradd -g caesar-job``) for readable
    ``ps`` output; a uid that is a real account must never run a client's job, which
    could read that account's files.
    """
    return sorted(uid for uid, gid in primary_gids.items() if uid in uids and gid != job_gid)


@dataclass(frozen=True)
class JobUser:
    uid: int
    gid: int


def setpriv_user_options(user: JobUser) -> list[str]:
    """``setpriv`` options that make the job ``user``, with no way back.

    Only the job group (``--clear-groups``: not root's supplementary groups) and no new
    privileges: a set-user-id program the job runs (``su``, ``mount``) gains nothing.
    ``setpriv`` sets the parent-death signal after changing the ids (the kernel clears
    it on a credential change), so ``--pdeathsig`` keeps its effect.
    """
    return ["--reuid", str(user.uid), "--regid", str(user.gid), "--clear-groups", "--no-new-privs"]


def ancestors(path: Path) -> list[Path]:
    """Every directory above ``path``, from ``/`` down (``path`` itself excluded)."""
    return list(reversed(path.parents))


def dirs_between(root: Path, inner: Path) -> list[Path]:
    """The directories strictly between ``root`` and ``inner``, outermost first.

    For the jobs root and an attempt directory: the owner's, the job's and the
    ``attempts`` directory, the ones a job user must traverse to reach its own.
    """
    if not inner.is_relative_to(root) or inner == root:
        raise ValueError(f"{inner} is not inside {root}")
    return [p for p in ancestors(inner) if p.is_relative_to(root) and p != root]


def roots_overlap(a: Path, b: Path) -> bool:
    """Whether one directory contains the other (or they are the same)."""
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


@dataclass(frozen=True)
class Handover:
    """What was handed to a job user, recorded before anything changes on disk.

    Kept in the uid's lock file while the attempt runs: a runner that dies mid-attempt
    leaves it there, and whoever takes the uid next gives the directory back to root
    (and the input back to its link) before the uid runs anything else.
    """

    attempt_dir: str
    gid: int
    """The attempt directory's group before the hand-over: what its files get back."""
    staged: str | None = None
    source: str | None = None
    """The upload the staged input links to (its link is restored at the end)."""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Handover | None:
        """The record in ``data``, or ``None`` for an empty or unreadable record."""
        if not data.strip():
            return None
        try:
            fields = json.loads(data)
            return cls(
                attempt_dir=str(fields["attempt_dir"]),
                gid=int(fields["gid"]),
                staged=None if fields.get("staged") is None else str(fields["staged"]),
                source=None if fields.get("source") is None else str(fields["source"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
