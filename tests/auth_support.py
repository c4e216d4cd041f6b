"""Tokens for authentication tests: real ones from the local Keycloak, forged ones made here.

Also the end-to-end stack those tests run against, authentication on (:func:`start_auth_stack`).

Forged tokens are signed with keys this module generates (or not signed at all), so a
test can present every kind of bad token the api must refuse: expired, another issuer
or audience, another key, ``alg: none``, HMAC with the realm's public key as secret.
"""

# ruff: noqa: S310 (fixed http URLs of the local Keycloak)

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk, jws

from caesar_testkit.devstack import Stack

KEYCLOAK_URL = os.environ.get("CAESAR_TEST_KEYCLOAK_URL", "http://127.0.0.1:8180")
REALM = "caesar"
ISSUER = f"{KEYCLOAK_URL}/realms/{REALM}"
AUDIENCE = "caesar-api"
CLI_CLIENT = "caesar-cli"
# The development users of deploy/keycloak/caesar-realm-dev.json (scripts/keycloak.sh).
PASSWORDS = {"alice": "alice-dev-password", "bob": "bob-dev-password", "carol": "carol-dev-password"}


def keycloak_up() -> bool:
    """Whether the realm's discovery document answers (scripts/keycloak.sh start)."""
    try:
        with urllib.request.urlopen(f"{ISSUER}/.well-known/openid-configuration", timeout=3) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def require_keycloak() -> None:
    """Skip the calling test when Keycloak is down, or fail it where it must run.

    ``CAESAR_TEST_REQUIRE_KEYCLOAK`` (set by CI) turns the skip into a failure, so a
    Keycloak that did not start cannot pass for authentication tests that passed.
    """
    if not keycloak_up():
        if os.environ.get("CAESAR_TEST_REQUIRE_KEYCLOAK"):
            pytest.fail(f"Keycloak is not answering at {KEYCLOAK_URL}")
        pytest.skip(f"Keycloak is not running at {KEYCLOAK_URL}: scripts/keycloak.sh start")


def start_auth_stack(tmp: Path, **extra_env: str) -> Iterator[Stack]:
    """An e2e stack (every service) with authentication on against the local realm.

    The end-to-end authentication modules each run one under their own fixture; the
    settings that make tokens of the development realm valid are written here once, so
    the web, CLI and API tests cannot come to disagree about which realm they trust.
    ``extra_env`` adds a module's own settings (``CAESAR_SLOTS``, say).
    """
    # Imported here: the unit tests import this module for its tokens and start no stack.
    from tests.e2e.conftest import make_stack

    require_keycloak()
    yield from make_stack(
        tmp,
        CAESAR_AUTH_ENABLED="true",
        CAESAR_KEYCLOAK_URL=KEYCLOAK_URL,
        CAESAR_KEYCLOAK_REALM=REALM,
        CAESAR_KEYCLOAK_AUDIENCE=AUDIENCE,
        CAESAR_OUTBOX_SWEEP_INTERVAL_S="1",
        **extra_env,
    )


def password_token(user: str, password: str | None = None) -> str:
    """An access token of ``user`` from the public CLI client (direct grant)."""
    body = urllib.parse.urlencode(
        {
            "grant_type": "password",
            "client_id": CLI_CLIENT,
            "username": user,
            "password": password or PASSWORDS[user],
        }
    ).encode()
    req = urllib.request.Request(f"{ISSUER}/protocol/openid-connect/token", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return str(json.load(resp)["access_token"])
    except urllib.error.HTTPError as exc:  # say why (locked out, bad client, ...)
        raise RuntimeError(f"no token for {user}: {exc.code} {exc.read()[:300]!r}") from None


def realm_jwks() -> dict[str, Any]:
    with urllib.request.urlopen(f"{ISSUER}/protocol/openid-connect/certs", timeout=10) as resp:
        data: dict[str, Any] = json.load(resp)
        return data


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (tests only)."""
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def new_rsa_key(kid: str) -> jwk.JWK:
    return jwk.JWK.generate(kty="RSA", size=2048, kid=kid, use="sig", alg="RS256")


def sign(claims: dict[str, Any], key: jwk.JWK, alg: str = "RS256", kid: str | None = None) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": kid if kid is not None else key.get("kid")}
    token = jws.JWS(json.dumps(claims).encode())
    token.add_signature(key, alg=alg, protected=json.dumps(header))
    return str(token.serialize(compact=True))


def unsigned(claims: dict[str, Any], kid: str) -> str:
    """``alg: none``: a header, a payload and an empty signature."""
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def hmac_with_public_key(claims: dict[str, Any], public_jwk: dict[str, Any]) -> str:
    """HS256 keyed with the realm's public key: the algorithm-confusion attack."""
    secret = json.dumps(public_jwk, sort_keys=True).encode()
    key = jwk.JWK(kty="oct", k=b64(secret))
    return sign(claims, key, alg="HS256", kid=str(public_jwk["kid"]))


@dataclass
class ClaimsFactory:
    """Good access-token claims, each overridable."""

    issuer: str = ISSUER
    audience: str = AUDIENCE

    def make(self, sub: str = "0b6c4c1e-1111-4222-8333-444455556666", **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "exp": now + 300,
            "iat": now,
            "iss": self.issuer,
            "aud": [self.audience, "account"],
            "sub": sub,
            "typ": "Bearer",
            "azp": CLI_CLIENT,
            "preferred_username": "forged",
            "realm_access": {"roles": ["user"]},
        }
        claims.update(overrides)
        return claims


def bad_tokens(trusted: jwk.JWK, realm_key: dict[str, Any], good_claims: dict[str, Any]) -> dict[str, str]:
    """Every kind of token the api must refuse with 401, by name.

    ``trusted`` is a key the api under test trusts besides the realm's, so the claim
    checks (expiry, audience, issuer) are reached and proven, not masked by a bad
    signature; ``realm_key`` is a public key of the realm (forgeries reuse its ``kid``).
    """
    kid = str(realm_key["kid"])
    other = new_rsa_key(kid)  # the realm's kid, another private key
    now = int(time.time())
    bad_sig = sign(good_claims, trusted).rsplit(".", 1)[0] + "." + b64(b"\0" * 256)
    return {
        "expired": sign({**good_claims, "exp": now - 120, "iat": now - 600}, trusted),
        "not-yet-valid": sign({**good_claims, "nbf": now + 600}, trusted),
        "wrong-audience": sign({**good_claims, "aud": "someone-else"}, trusted),
        "wrong-issuer": sign({**good_claims, "iss": "http://evil.example/realms/caesar"}, trusted),
        "refresh-token": sign({**good_claims, "typ": "Refresh"}, trusted),
        "other-key": sign(good_claims, other, kid=kid),
        "other-key-unknown-kid": sign(good_claims, new_rsa_key("not-a-realm-kid")),
        "alg-none": unsigned(good_claims, kid),
        "hmac": hmac_with_public_key(good_claims, realm_key),
        "bad-signature": bad_sig,
        "garbage": "not.a.jwt",
    }
