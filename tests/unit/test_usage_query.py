"""The usage report's parameters, as both the api and accounting read them."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caesar_common.usage_query import GROUP_BY, UsageQuery, UsageQueryError


def test_defaults_are_everyone_by_user_with_open_bounds() -> None:
    assert UsageQuery.parse({}, owner_key="user") == UsageQuery("user", None, None, None)


def test_a_full_query_reads_back_from_its_params() -> None:
    query = UsageQuery.parse(
        {"group_by": "day", "from": "2026-05-01", "to": "2026-05-31", "user": "alice"}, owner_key="user"
    )
    assert query == UsageQuery("day", date(2026, 5, 1), date(2026, 5, 31), "alice")
    # The api sends it on as accounting's ``owner``.
    assert UsageQuery.parse(query.params(owner_key="owner"), owner_key="owner") == query


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"group_by": "month"}, "group_by must be one of user, app, day"),
        ({"from": "2026-5-1"}, "from must be a date YYYY-MM-DD"),
        ({"to": "20260501"}, "to must be a date YYYY-MM-DD"),
        ({"from": "2026-02-30"}, "from must be a real calendar date"),
        ({"to": "0000-01-01"}, "to must be a real calendar date"),
        ({"from": "\uff12\uff10\uff12\uff16-05-01"}, "from must be a date YYYY-MM-DD"),  # non-ASCII digits
        ({"from": ""}, "from must be a date"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "from (2026-05-02) is after to (2026-05-01)"),
        ({"user": "../etc"}, "user is not a valid user id"),
        ({"user": ""}, "user is not a valid user id"),
    ],
)
def test_every_bad_parameter_is_refused_with_a_clear_message(params: dict[str, str], message: str) -> None:
    with pytest.raises(UsageQueryError, match=re.escape(message)):
        UsageQuery.parse(params, owner_key="user")


@given(
    group_by=st.sampled_from(GROUP_BY),
    first=st.none() | st.dates(),
    last=st.none() | st.dates(),
    owner=st.none() | st.from_regex(r"\A[a-z0-9][a-z0-9_.@-]{0,20}\Z"),
)
def test_params_round_trip(group_by: str, first: date | None, last: date | None, owner: str | None) -> None:
    if first is not None and last is not None and first > last:
        first, last = last, first
    query = UsageQuery(group_by, first, last, owner)
    assert UsageQuery.parse(query.params(owner_key="owner"), owner_key="owner") == query
