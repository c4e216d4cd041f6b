"""Identifier validation: nothing a client sends may become a path component unchecked."""

from __future__ import annotations

import string
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caesar_common.ids import (
    is_file_id,
    is_job_id,
    new_file_id,
    new_job_id,
    safe_owner,
)

FILE_ID = "0123456789abcdef0123456789abcdef"
JOB_ID = "01234567-89ab-cdef-0123-456789abcdef"
HEX = set("0123456789abcdef")

# Strings no id check may accept, whatever the id kind.
HOSTILE = [
    "",
    " ",
    ".",
    "..",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "/etc/passwd",
    "C:\\Windows\\system32",
    "*",
    "$(rm -rf /)",
    "{}",
    "0123456789abcdef\x000123456789abcdef",
    "\x00" * 32,
]


def _swap(s: str, i: int, c: str) -> str:
    return s[:i] + c + s[i + 1 :]


# ----------------------------------------------------------------------------- file ids


def test_new_file_ids_are_valid_and_unique() -> None:
    ids = [new_file_id() for _ in range(500)]
    assert all(is_file_id(i) for i in ids)
    assert len(set(ids)) == 500
    assert not any(is_job_id(i) for i in ids)


def test_file_id_accepts_lowercase_hex_32() -> None:
    assert is_file_id(FILE_ID)
    assert is_file_id("f" * 32)
    assert is_file_id(uuid.UUID(int=0).hex)


@pytest.mark.parametrize(
    "value",
    [
        *HOSTILE,
        FILE_ID[:31],  # 31 chars
        FILE_ID + "0",  # 33 chars
        FILE_ID.upper(),
        _swap(FILE_ID, 10, "A"),  # one upper-case hex digit
        _swap(FILE_ID, 0, "g"),
        FILE_ID + "\n",  # ``$`` would match before a trailing newline
        "\n" + FILE_ID,
        " " + FILE_ID,
        FILE_ID + " ",
        FILE_ID[:16] + "\x00" + FILE_ID[17:],  # NUL inside, length kept
        FILE_ID + "\x00",
        _swap(FILE_ID, 3, "\u0430"),  # Cyrillic a
        _swap(FILE_ID, 5, "\uff10"),  # fullwidth digit zero
        _swap(FILE_ID, 7, "\u0660"),  # Arabic-Indic digit zero (a \\d would take it)
        _swap(FILE_ID, 9, "\u0665"),  # Arabic-Indic digit five
        _swap(FILE_ID, 11, "\u217d"),  # small roman numeral one hundred, looks like c
        JOB_ID,
        str(uuid.UUID(FILE_ID)),
        "../" + FILE_ID[3:],
        FILE_ID[:29] + "/..",
    ],
)
def test_file_id_rejects(value: str) -> None:
    assert not is_file_id(value)


@given(st.binary(min_size=16, max_size=16))
def test_any_16_bytes_in_lowercase_hex_is_a_file_id(raw: bytes) -> None:
    assert is_file_id(raw.hex())
    if set(raw.hex()) & set("abcdef"):
        assert not is_file_id(raw.hex().upper())


@given(st.text(max_size=40))
def test_whatever_is_accepted_as_a_file_id_is_32_ascii_hex(value: str) -> None:
    if is_file_id(value):
        assert len(value) == 32
        assert set(value) <= HEX


@given(
    st.text(
        alphabet=st.sampled_from("0123456789abcdefA\x00/.\n\u0660\uff10\u0430"),
        min_size=32,
        max_size=32,
    )
)
def test_file_id_near_misses(value: str) -> None:
    assert is_file_id(value) == (set(value) <= HEX)


# ----------------------------------------------------------------------------- job ids


def test_new_job_ids_are_valid_and_unique() -> None:
    ids = [new_job_id() for _ in range(500)]
    assert all(is_job_id(i) for i in ids)
    assert len(set(ids)) == 500
    assert not any(is_file_id(i) for i in ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_job_id_accepts_dashed_lowercase_uuid() -> None:
    assert is_job_id(JOB_ID)
    assert is_job_id(str(uuid.uuid4()))
    assert is_job_id(str(uuid.UUID(int=0)))


@pytest.mark.parametrize(
    "value",
    [
        *HOSTILE,
        JOB_ID.upper(),
        _swap(JOB_ID, 0, "A"),
        JOB_ID.replace("-", ""),  # a file id is not a job id
        JOB_ID[:-1],  # 35 chars
        JOB_ID + "0",  # 37 chars
        "{" + JOB_ID + "}",
        "urn:uuid:" + JOB_ID,
        JOB_ID + "\n",
        JOB_ID + "\x00",
        JOB_ID[:8] + "\x00" + JOB_ID[9:],  # NUL instead of a dash
        JOB_ID.replace("-", "_"),
        JOB_ID.replace("-", "\u2010"),  # Unicode hyphen
        JOB_ID.replace("-", "\u2212"),  # minus sign
        _swap(JOB_ID, 1, "\uff11"),  # fullwidth one
        _swap(JOB_ID, 2, "\u0430"),  # Cyrillic a
        "0123456-789ab-cdef-0123-456789abcdef",  # dash one place off
        "01234567-89ab-cdef-0123-456789abcdef-",
        "../../etc/passwd/0123-456789abcdef",
        "0123456/-89ab-cdef-0123-456789abcdef",
    ],
)
def test_job_id_rejects(value: str) -> None:
    assert not is_job_id(value)


@given(st.uuids())
def test_any_uuid_string_is_a_job_id(value: uuid.UUID) -> None:
    assert is_job_id(str(value))
    assert not is_file_id(str(value))


@given(st.text(max_size=40))
def test_whatever_is_accepted_as_a_job_id_is_a_canonical_uuid(value: str) -> None:
    if is_job_id(value):
        assert str(uuid.UUID(value)) == value


# ----------------------------------------------------------------------------- owners


@pytest.mark.parametrize(
    "owner",
    [
        "anonymous",
        "5f1c0e8e-7d0a-4d1e-9a0b-3b2c1d0e9f8a",
        "alice",
        "Alice.Smith@example.org",
        "user_1",
        "a",
        "0",
        "a..b",  # dots inside a name are harmless: not "." or ".."
        "a" * 128,
    ],
)
def test_safe_owner_accepts(owner: str) -> None:
    assert safe_owner(owner) == owner


@pytest.mark.parametrize(
    "owner",
    [
        *HOSTILE,
        "...",
        ".hidden",
        "-rf",
        "_x",
        "@x",
        "a/b",
        "a\\b",
        "../alice",
        "alice/..",
        "alice\x00",
        "ali\x00ce",
        "alice\n",
        "alice\r\n",
        "a b",
        "alice\t",
        "al:ice",
        "al;ice",
        "a" * 129,
        "\u0430lice",  # Cyrillic a
        "\uff41lice",  # fullwidth a
        "alic\u00e9",  # e-acute: not ASCII
        "\uff41\uff44\uff4d\uff49\uff4e",  # fullwidth "admin"
        "alice\u200b",  # zero-width space
        "\u2024\u2024",  # one dot leader twice: looks like ".."
    ],
)
def test_safe_owner_rejects(owner: str) -> None:
    with pytest.raises(ValueError, match="not a safe path component"):
        safe_owner(owner)


@given(st.text(max_size=140))
def test_whatever_safe_owner_accepts_is_one_plain_path_component(owner: str) -> None:
    try:
        safe_owner(owner)
    except ValueError:
        return
    allowed = set(string.ascii_letters + string.digits + "_.@-")
    assert set(owner) <= allowed
    assert 1 <= len(owner) <= 128
    assert owner not in {".", ".."}
    assert owner[0].isalnum()
    assert "/" not in owner
