"""POSIX access ACLs as the kernel stores them (``system.posix_acl_access``), pure.

The runner grants a job user exactly what it needs: traverse-only on the directories
above its attempt directory, read on its input, nothing on the uploads. Modes cannot say
that (they have a single "other" class, which every local user is in), a named ACL
entry can. The runner writes the extended attribute itself, so it needs neither the
``acl`` package nor a process per change; this module is the codec and the edits.

Layout (``linux/posix_acl_xattr.h``): a little-endian ``u32`` version (2), then one
``(u16 tag, u16 perm, u32 id)`` per entry, sorted by tag then id; owner, owning group,
mask and other entries carry no id. A named entry needs a mask entry; :func:`with_named`
and :func:`without_named` keep it equal to the union of the group class, as
``setfacl`` does, and drop it with the last named entry, so revoking every grant gives
back the file's original mode bits.
"""

from __future__ import annotations

import stat
import struct
from dataclasses import dataclass
from typing import Final

VERSION: Final = 2
USER_OBJ: Final = 0x01
USER: Final = 0x02
GROUP_OBJ: Final = 0x04
GROUP: Final = 0x08
MASK: Final = 0x10
OTHER: Final = 0x20
NAMED: Final = frozenset({USER, GROUP})
UNDEFINED_ID: Final = 0xFFFFFFFF

READ: Final = 4
WRITE: Final = 2
EXECUTE: Final = 1
"""On a directory, ``EXECUTE`` alone is traverse-only: enter by a known name, never list."""

_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")


class AclError(ValueError):
    """Bytes that are not a version-2 POSIX ACL."""


@dataclass(frozen=True, order=True)
class AclEntry:
    tag: int
    qualifier: int
    perms: int


Acl = tuple[AclEntry, ...]


def from_mode(mode: int) -> Acl:
    """The minimal ACL equivalent to ``mode`` (a file that has no ACL attribute)."""
    return (
        AclEntry(USER_OBJ, UNDEFINED_ID, (mode >> 6) & 7),
        AclEntry(GROUP_OBJ, UNDEFINED_ID, (mode >> 3) & 7),
        AclEntry(OTHER, UNDEFINED_ID, mode & 7),
    )


def decode(blob: bytes) -> Acl:
    if len(blob) < _HEADER.size or (len(blob) - _HEADER.size) % _ENTRY.size:
        raise AclError(f"an ACL attribute of {len(blob)} bytes")
    (version,) = _HEADER.unpack_from(blob)
    if version != VERSION:
        raise AclError(f"ACL version {version}")
    raw = _ENTRY.iter_unpack(blob[_HEADER.size :])
    entries = [AclEntry(tag, qualifier, perms) for tag, perms, qualifier in raw]
    return tuple(sorted(entries))


def encode(acl: Acl) -> bytes:
    entries = sorted(acl)
    body = b"".join(
        _ENTRY.pack(e.tag, e.perms, e.qualifier if e.tag in NAMED else UNDEFINED_ID) for e in entries
    )
    return _HEADER.pack(VERSION) + body


def _with_mask(entries: list[AclEntry]) -> Acl:
    """``entries`` with the mask recomputed (or dropped when no named entry is left)."""
    entries = [e for e in entries if e.tag != MASK]
    if any(e.tag in NAMED for e in entries):
        union = 0
        for e in entries:
            if e.tag in NAMED or e.tag == GROUP_OBJ:
                union |= e.perms
        entries.append(AclEntry(MASK, UNDEFINED_ID, union))
    return tuple(sorted(entries))


def with_named(acl: Acl, tag: int, qualifier: int, perms: int) -> Acl:
    """``acl`` with the named entry ``tag:qualifier`` set to exactly ``perms``.

    A named group entry also decides for its members: they no longer fall through to
    "other", so ``--x`` both grants traverse and withholds listing, and ``---`` denies
    a directory to the group whatever its mode says.
    """
    if tag not in NAMED:
        raise ValueError(f"tag {tag:#x} is not a named entry")
    kept = [e for e in acl if not (e.tag == tag and e.qualifier == qualifier)]
    return _with_mask([*kept, AclEntry(tag, qualifier, perms & 7)])


def without_named(acl: Acl, tag: int, qualifier: int) -> Acl:
    """``acl`` without the named entry ``tag:qualifier`` (unchanged if it has none)."""
    if not any(e.tag == tag and e.qualifier == qualifier for e in acl):
        return acl
    return _with_mask([e for e in acl if not (e.tag == tag and e.qualifier == qualifier)])


def named_perms(acl: Acl, tag: int, qualifier: int) -> int | None:
    """The permissions of the named entry ``tag:qualifier``, or ``None`` without one."""
    return next((e.perms for e in acl if e.tag == tag and e.qualifier == qualifier), None)


def others_may_traverse(mode: int) -> bool:
    """Whether a user outside a directory's owner and group may pass through it."""
    return bool(mode & stat.S_IXOTH)
