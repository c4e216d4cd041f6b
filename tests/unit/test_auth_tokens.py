"""TokenVerifier with keys made here: every check, the key cache and its refresh."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from jwcrypto import jwk

from caesar_api.auth import AuthError, TokenVerifier
from tests.auth_support import (
    ClaimsFactory,
    b64,
    bad_tokens,
    hmac_with_public_key,
    new_rsa_key,
    sign,
    unsigned,
)

ISSUER = "http://127.0.0.1:8180/realms/caesar"


class StaticKeys:
    """A key source serving the public halves of ``keys``; counts fetches."""

    def __init__(self, *keys: jwk.JWK) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.fail = False

    async def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        if self.fail:
            raise OSError("keycloak down")
        return {"keys": [json.loads(k.export_public()) for k in self.keys]}


@pytest.fixture
def realm_key() -> jwk.JWK:
    return new_rsa_key("realm-1")


@pytest.fixture
def source(realm_key: jwk.JWK) -> StaticKeys:
    return StaticKeys(realm_key)


@pytest.fixture
def verifier(source: StaticKeys) -> TokenVerifier:
    return TokenVerifier(source, issuer=ISSUER, audience="caesar-api", required_role="user")


CLAIMS = ClaimsFactory(issuer=ISSUER)


async def test_valid_token_gives_identity(verifier: TokenVerifier, realm_key: jwk.JWK) -> None:
    identity = await verifier.verify(sign(CLAIMS.make(sub="abc-123", preferred_username="alice"), realm_key))
    assert identity.owner == "abc-123"
    assert identity.username == "alice"
    assert not identity.is_admin


async def test_admin_role(verifier: TokenVerifier, realm_key: jwk.JWK) -> None:
    token = sign(CLAIMS.make(realm_access={"roles": ["admin"]}), realm_key)
    assert (await verifier.verify(token)).is_admin


async def test_audience_as_string(verifier: TokenVerifier, realm_key: jwk.JWK) -> None:
    await verifier.verify(sign(CLAIMS.make(aud="caesar-api"), realm_key))


@pytest.mark.parametrize(
    "name",
    [
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-issuer",
        "refresh-token",
        "other-key",
        "other-key-unknown-kid",
        "alg-none",
        "hmac",
        "bad-signature",
        "garbage",
    ],
)
async def test_bad_tokens_are_401(verifier: TokenVerifier, realm_key: jwk.JWK, name: str) -> None:
    tokens = bad_tokens(realm_key, json.loads(realm_key.export_public()), CLAIMS.make())
    with pytest.raises(AuthError) as err:
        await verifier.verify(tokens[name])
    assert err.value.status == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": None},
        {"exp": "9999999999"},
        {"exp": True},
        {"sub": "../etc"},
        {"sub": ""},
        {"sub": 42},
        {"sub": "a/b"},
        {"aud": None},
        {"iss": None},
        {"nbf": "0"},
    ],
    ids=str,
)
async def test_bad_claims(verifier: TokenVerifier, realm_key: jwk.JWK, overrides: dict[str, Any]) -> None:
    claims = CLAIMS.make()
    for key, value in overrides.items():
        if value is None:
            claims.pop(key)
        else:
            claims[key] = value
    with pytest.raises(AuthError) as err:
        await verifier.verify(sign(claims, realm_key))
    assert err.value.status == 401


async def test_hmac_keyed_with_the_public_key_is_refused(verifier: TokenVerifier, realm_key: jwk.JWK) -> None:
    public = json.loads(realm_key.export_public())
    with pytest.raises(AuthError):
        await verifier.verify(hmac_with_public_key(CLAIMS.make(), public))
    with pytest.raises(AuthError):
        await verifier.verify(unsigned(CLAIMS.make(), "realm-1"))


@pytest.mark.parametrize(
    "token",
    ["", ".", "..", "a.b.c", "x" * 20000, "e30.e30.", "%00.%00.%00", b64(b"[]") + ".e30.x", "ünïcödé.a.b"],
)
async def test_malformed_tokens(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(AuthError):
        await verifier.verify(token)


async def test_missing_role_is_403(verifier: TokenVerifier, realm_key: jwk.JWK) -> None:
    with pytest.raises(AuthError) as err:
        await verifier.verify(sign(CLAIMS.make(realm_access={"roles": ["offline_access"]}), realm_key))
    assert err.value.status == 403


async def test_leeway_on_expiry(source: StaticKeys, realm_key: jwk.JWK) -> None:
    verifier = TokenVerifier(source, issuer=ISSUER, audience="caesar-api", leeway_s=30)
    await verifier.verify(sign(CLAIMS.make(exp=int(time.time()) - 10), realm_key))


async def test_keys_fetched_once_and_refreshed_on_unknown_kid(source: StaticKeys, realm_key: jwk.JWK) -> None:
    verifier = TokenVerifier(source, issuer=ISSUER, audience="caesar-api", refresh_interval_s=0.01)
    for _ in range(3):
        await verifier.verify(sign(CLAIMS.make(), realm_key))
    assert source.fetches == 1
    rotated = new_rsa_key("realm-2")
    source.keys.append(rotated)
    time.sleep(0.02)
    await verifier.verify(sign(CLAIMS.make(), rotated))
    assert source.fetches == 2
    assert verifier.key_ids == {"realm-1", "realm-2"}


async def test_unknown_kids_cannot_hammer_keycloak(source: StaticKeys, realm_key: jwk.JWK) -> None:
    verifier = TokenVerifier(source, issuer=ISSUER, audience="caesar-api", refresh_interval_s=60)
    await verifier.verify(sign(CLAIMS.make(), realm_key))
    for i in range(20):
        with pytest.raises(AuthError):
            await verifier.verify(sign(CLAIMS.make(), new_rsa_key(f"random-{i}")))
    assert source.fetches == 1


async def test_keycloak_down_keeps_cached_keys(source: StaticKeys, realm_key: jwk.JWK) -> None:
    verifier = TokenVerifier(source, issuer=ISSUER, audience="caesar-api", refresh_interval_s=0.001)
    await verifier.verify(sign(CLAIMS.make(), realm_key))
    source.fail = True
    time.sleep(0.01)
    assert not await verifier.refresh()
    await verifier.verify(sign(CLAIMS.make(), realm_key))


async def test_no_keys_at_all_is_503(realm_key: jwk.JWK) -> None:
    source = StaticKeys(realm_key)
    source.fail = True
    verifier = TokenVerifier(source, issuer=ISSUER, audience="caesar-api")
    with pytest.raises(AuthError) as err:
        await verifier.verify(sign(CLAIMS.make(), realm_key))
    assert err.value.status == 503


def test_encryption_keys_are_not_signing_keys() -> None:
    from caesar_api.auth.tokens import _sig_keys

    sig = json.loads(new_rsa_key("s").export_public())
    enc = {**json.loads(new_rsa_key("e").export_public()), "use": "enc"}
    assert set(_sig_keys({"keys": [sig, enc, {"kty": "oct", "kid": "x", "k": "AA"}, "junk"]})) == {"s"}


def test_issuer_derived_from_url_or_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from caesar_api.settings import ApiSettings

    for key in ("CAESAR_KEYCLOAK_URL", "CAESAR_KEYCLOAK_ISSUER", "CAESAR_KEYCLOAK_REALM"):
        monkeypatch.delenv(key, raising=False)
    assert ApiSettings().expected_issuer == "http://127.0.0.1:8180/realms/caesar"
    monkeypatch.setenv("CAESAR_KEYCLOAK_URL", "http://keycloak:8180/")
    assert ApiSettings().expected_issuer == "http://keycloak:8180/realms/caesar"
    monkeypatch.setenv("CAESAR_KEYCLOAK_ISSUER", "http://localhost:8180/realms/caesar/")
    assert ApiSettings().expected_issuer == "http://localhost:8180/realms/caesar"
