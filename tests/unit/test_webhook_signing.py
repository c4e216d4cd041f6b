"""Webhook signatures and the retry schedule (pure)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from caesar_api.push.domain.backoff import RetryPolicy
from caesar_api.push.domain.signing import SECRET_PREFIX, new_secret, signature, verify

BODY = b'{"event_id":"x","state":"SUCCESS"}'


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"whsec_k", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature("whsec_k", 1700000000, BODY) == "sha256=" + expected


def test_a_receiver_accepts_the_real_thing_and_refuses_tampering_or_replays() -> None:
    header = signature("whsec_k", 1700000000, BODY)
    assert verify("whsec_k", "1700000000", BODY, header, now=1700000010)
    assert not verify("whsec_k", "1700000000", BODY + b" ", header, now=1700000010)  # body changed
    assert not verify("whsec_k", "1700000001", BODY, header, now=1700000010)  # timestamp changed
    assert not verify("whsec_other", "1700000000", BODY, header, now=1700000010)  # other secret
    assert not verify("whsec_k", "1700000000", BODY, header, now=1700000000 + 301)  # too old: a replay
    assert not verify("whsec_k", "17e8", BODY, header, now=1700000010)


def test_secrets_are_fresh_and_long() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith(SECRET_PREFIX)
    assert len(a) - len(SECRET_PREFIX) >= 43  # 32 random bytes, base64url


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=8, base_s=10, cap_s=300)
    assert [policy.delay_s(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert policy.delay_s(10_000) == 300


def test_a_delivery_is_retried_until_its_attempts_are_used_up() -> None:
    policy = RetryPolicy(max_attempts=3, base_s=1, cap_s=60)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    assert policy.next_attempt_at(1, now) == now + timedelta(seconds=1)
    assert policy.next_attempt_at(2, now) == now + timedelta(seconds=2)
    assert policy.next_attempt_at(3, now) is None


@pytest.mark.parametrize("attempts", [1, 5, 50])
def test_delays_never_exceed_the_cap(attempts: int) -> None:
    assert RetryPolicy(60, 0.5, 7).delay_s(attempts) <= 7
