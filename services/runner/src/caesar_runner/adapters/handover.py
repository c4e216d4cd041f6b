"""Files a job user gets for one attempt, and how the runner takes them back.

* The staged input is a symlink to the upload, which lives in the owner's upload
  directory, closed to job users. For the attempt it becomes a hard link (same inode,
  no copy) with a read grant for the job's uid alone, or a read-only copy where a link
  cannot be made (another file system). Neither makes the upload readable through its
  own path, nor writable: the job cannot alter the stored upload. At the end the grant
  is revoked and the symlink comes back, so the job directory looks as it always did.
* The attempt directory is the job user's while it runs; afterwards every entry the
  job user owns becomes root's, with the directory's original group, and set-id bits
  are stripped. The walk never follows a symlink and changes nothing the job did not
  own: a hard link the job made to someone else's file keeps its owner.
* Files the job left in the host's shared temporary directories are removed, so the
  next job of the same uid does not find them.

Every function here runs when no process of the job user is alive (before its first
step, or after the sweep), so nothing moves under the walk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path

from caesar_common.logging import get_logger
from caesar_runner.adapters.acl import AclUnsupported, drop_named, set_named
from caesar_runner.domain.acl import READ, USER
from caesar_runner.domain.jobusers import JobUser

log = get_logger(__name__)

SHARED_TMP_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))  # noqa: S108 (scrubbed, not used)
COPY_MODE = 0o440
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES}


def link_source(staged: Path) -> Path | None:
    """The upload ``staged`` links to, or ``None`` if it is not a symlink."""
    try:
        target = Path(os.readlink(staged))
    except OSError:
        return None
    return target if target.is_absolute() else staged.parent / target


def _scratch_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.jobuser")


def stage_readable(staged: Path, source: Path, user: JobUser) -> str:
    """Replace the ``staged`` symlink by an input the job user can read; how (link or copy)."""
    scratch = _scratch_name(staged)
    scratch.unlink(missing_ok=True)
    how = "link"
    try:
        os.link(source, scratch)
        set_named(scratch, USER, user.uid, READ)
    except (AclUnsupported, OSError) as exc:
        if not isinstance(exc, AclUnsupported) and exc.errno not in _NO_LINK:
            raise
        scratch.unlink(missing_ok=True)
        shutil.copyfile(source, scratch)
        os.chown(scratch, 0, user.gid)
        os.chmod(scratch, COPY_MODE)
        how = "copy"
    os.replace(scratch, staged)
    return how


def restore_link(staged: Path, source: Path, uid: int) -> None:
    """Revoke ``uid``'s read grant on the input and put the symlink back."""
    for path in (source, staged):  # the upload, and the linked inode if the upload is gone
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                with contextlib.suppress(AclUnsupported):
                    drop_named(path, USER, uid)
    if link_source(staged) == source:
        return
    scratch = _scratch_name(staged)
    scratch.unlink(missing_ok=True)
    os.symlink(source, scratch)
    try:
        os.replace(scratch, staged)
    except OSError:
        scratch.unlink(missing_ok=True)
        raise


def _reclaim(path: Path, uid: int, gid: int) -> None:
    st = os.lstat(path)
    if st.st_uid != uid:
        return
    os.chown(path, 0, gid, follow_symlinks=False)
    if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))


def reclaim_tree(top: Path, uid: int, gid: int, mode: int) -> int:
    """Give ``top`` and everything in it that ``uid`` owns to root (group ``gid``); a count."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(FileNotFoundError):
                _reclaim(Path(dirpath) / name, uid, gid)
                count += 1
    os.chown(top, 0, gid, follow_symlinks=False)
    os.chmod(top, mode)
    return count + 1


def scrub_shared_tmp(uid: int, dirs: tuple[Path, ...] = SHARED_TMP_DIRS) -> list[Path]:
    """Remove what ``uid`` left at the top of the host's shared temporary directories."""
    removed = []
    for directory in dirs:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)  # fd-based on Linux: immune to symlink races
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError as exc:
                log.warning("could not remove a job user's temporary file", path=entry.path, error=str(exc))
    return removed
