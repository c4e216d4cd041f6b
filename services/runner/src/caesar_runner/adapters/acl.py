"""Read-modify-write of a file's access ACL, safely against concurrent writers.

Two attempts of different jobs may grant on the same upload (one image, two finders)
or the same owner directory at once, from two threads or two runners on the host. The
attribute is one blob, so each edit holds an exclusive ``flock`` on the file while it
reads and writes it; a change that changes nothing writes nothing. Files are opened
without following a final symlink and without blocking (a FIFO planted in a job's
directory must not hang the runner).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from caesar_runner.domain.acl import (
    EXECUTE,
    GROUP,
    Acl,
    decode,
    encode,
    from_mode,
    others_may_traverse,
    with_named,
    without_named,
)
from caesar_runner.domain.jobusers import ancestors

ACCESS_ACL = "system.posix_acl_access"
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTSUP}


class AclUnsupported(OSError):
    """The file system of this path keeps no POSIX ACLs (e.g. NFSv4, some FUSE mounts)."""


def read_acl(fd: int) -> Acl:
    try:
        return decode(os.getxattr(fd, ACCESS_ACL))
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return from_mode(os.fstat(fd).st_mode)
        if exc.errno in _UNSUPPORTED:
            raise AclUnsupported(exc.errno, "no POSIX ACLs here") from exc
        raise


def edit_acl(path: Path, change: Callable[[Acl], Acl]) -> bool:
    """Apply ``change`` to ``path``'s access ACL under a lock; whether anything changed."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        current = read_acl(fd)
        wanted = change(current)
        if wanted == current:
            return False
        try:
            os.setxattr(fd, ACCESS_ACL, encode(wanted))
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                raise AclUnsupported(exc.errno, f"no POSIX ACLs on {path}") from exc
            raise
        return True
    finally:
        os.close(fd)  # also releases the lock


def set_named(path: Path, tag: int, qualifier: int, perms: int) -> bool:
    """Give the named entry ``tag:qualifier`` exactly ``perms`` on ``path``."""
    return edit_acl(path, lambda acl: with_named(acl, tag, qualifier, perms))


def drop_named(path: Path, tag: int, qualifier: int) -> bool:
    """Remove the named entry ``tag:qualifier`` from ``path`` (nothing if it has none)."""
    return edit_acl(path, lambda acl: without_named(acl, tag, qualifier))


def grant_traverse_above(root: Path, gid: int) -> list[Path]:
    """Traverse-only for group ``gid`` on every closed directory above ``root`` (and its
    real path); the directories whose grant had to be (re)written.

    Checked again at each hand-over, not only at start: a ``chmod`` of such a directory
    (a new pytest session does one on its temporary root) resets the ACL's mask and
    silently voids the grant. Unchanged grants cost a read, no write.
    """
    changed = []
    for directory in dict.fromkeys([*ancestors(root), *ancestors(root.resolve())]):
        if not others_may_traverse(os.stat(directory).st_mode) and set_named(directory, GROUP, gid, EXECUTE):
            changed.append(directory)
    return changed
