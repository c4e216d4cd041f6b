"""``HeldBefore.as_filters`` against the real MongoDB-wire server: the database applies
exactly the rule :func:`caesar_common.jobstate.supersedes` states (the unit tests prove
``HeldBefore.matches`` is that rule; this proves the filter is ``matches``)."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from caesar_common.jobstate import HeldBefore, JobPosition, JobState, is_terminal

pytestmark = pytest.mark.integration

Document = dict[str, Any]

HELD = [JobPosition(0, JobState.PENDING)] + [
    JobPosition(a, s, r)
    for a in (1, 2, 3)
    for s in JobState
    for r in (False, True)
    if not r or is_terminal(s)
]


def _doc_id(p: JobPosition) -> str:
    return f"{p.attempt}-{p.state.value}-{int(p.retryable)}"


async def test_the_filter_matches_what_the_rule_accepts(
    async_mongo: AsyncMongoClient[Document], db_prefix: str
) -> None:
    collection = async_mongo[f"{db_prefix}_jobstate"]["positions"]
    docs: list[Document] = []
    for p in HELD:
        doc: Document = {"_id": _doc_id(p), "attempt": p.attempt, "state": p.state.value}
        if p.retryable or p.attempt % 2:  # ``retryable`` absent on some records, as on new ones
            doc["retryable"] = p.retryable
        docs.append(doc)
    await collection.insert_many(docs)
    for new in HELD[1:]:
        for same_attempt in (True, False):
            held_before = HeldBefore(new, same_attempt)
            found: list[str] = []
            for position in held_before.as_filters():
                assert "$or" not in position
                assert "$nor" not in position
                found += [d["_id"] async for d in collection.find(position, {"_id": 1})]
            expected = {_doc_id(p) for p in HELD if held_before.matches(p)}
            assert len(found) == len(set(found)), (new, same_attempt)  # disjoint filters
            assert set(found) == expected, (new, same_attempt)
