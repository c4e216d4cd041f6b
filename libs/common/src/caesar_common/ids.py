"""Identifier formats and validation.

Every id that reaches a path or a query is checked against these patterns first, so a
client string such as ``../../etc/passwd`` can never become part of a file path.
"""

from __future__ import annotations

import re
import uuid

FILE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
JOB_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Owners become directory names: Keycloak subjects are UUIDs; 'anonymous' when auth is off.
OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


def new_file_id() -> str:
    """A v1-compatible file id: uuid4 as 32 lowercase hex characters."""
    return uuid.uuid4().hex


def new_job_id() -> str:
    """A v1-compatible job id: a dashed uuid4."""
    return str(uuid.uuid4())


def is_file_id(value: str) -> bool:
    return bool(FILE_ID_RE.fullmatch(value))


def is_job_id(value: str) -> bool:
    return bool(JOB_ID_RE.fullmatch(value))


def safe_owner(owner: str) -> str:
    """Return ``owner`` if it is safe as a single path component, else raise ``ValueError``."""
    if not OWNER_RE.fullmatch(owner) or owner in {".", ".."}:
        raise ValueError(f"owner {owner!r} is not a safe path component")
    return owner
