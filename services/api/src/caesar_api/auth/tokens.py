"""Local verification of Keycloak access tokens.

Why local: asking Keycloak about every request (introspection) would make it a hot
dependency of every call and double the latency. A signed JWT carries everything we need
once its signature is checked against the realm's public keys, which change rarely.

What is checked, and why each check exists:

- the header: only asymmetric algorithms are accepted, so ``alg: none`` and HMAC
  tokens (signed with a *public* key used as a shared secret, the classic confusion
  attack) never reach signature verification;
- the signature, with the realm key named by ``kid``; an unknown ``kid`` triggers one
  re-fetch of the keys (Keycloak rotated them), rate limited so random ``kid`` values
  cannot turn the api into a load generator against Keycloak;
- ``iss`` (tokens of another realm or server), ``aud`` (tokens issued for another
  client), ``exp``/``nbf`` (with a small leeway for clock skew) and ``typ`` (a refresh
  or ID token is not an access token);
- ``sub`` must be usable as an owner id, because it becomes a path component.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from caesar_api.auth.identity import Identity
from caesar_common.ids import OWNER_RE
from caesar_common.logging import get_logger

log = get_logger(__name__)

# Asymmetric signatures only: the verifier holds public keys, never shared secrets.
ALLOWED_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
# Keycloak access tokens are a few KB; anything far larger is not one of ours.
MAX_TOKEN_CHARS = 16 * 1024


class AuthError(Exception):
    """A request that cannot be authenticated: 401 (bad token), 403 (no role), 503 (no keys)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class KeySource(Protocol):
    """Where the realm's JSON Web Key Set comes from (Keycloak, or a test)."""

    async def fetch(self) -> dict[str, Any]: ...


class KeycloakKeys:
    """The realm's JWKS from Keycloak's ``/protocol/openid-connect/certs`` (python-keycloak)."""

    def __init__(self, server_url: str, realm: str, client_id: str, timeout_s: int = 10) -> None:
        # Imported here so the module (and its unit tests) load without the HTTP stack.
        from keycloak import KeycloakOpenID

        self._openid = KeycloakOpenID(
            server_url=server_url.rstrip("/") + "/",
            realm_name=realm,
            client_id=client_id,
            timeout=timeout_s,
        )

    async def fetch(self) -> dict[str, Any]:
        certs = await self._openid.a_certs()
        if not isinstance(certs, dict):
            raise ValueError("the realm's certs endpoint did not answer a JSON object")
        return certs


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, decoded without trusting anything in it."""
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError("Invalid token: too long")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise AuthError("Invalid token: not a signed JWT")
    try:
        header = _b64_json(parts[0])
    except (ValueError, UnicodeError, binascii.Error):
        raise AuthError("Invalid token: unreadable header") from None
    if not isinstance(header, dict):
        raise AuthError("Invalid token: unreadable header")
    return header


def _sig_keys(jwks: dict[str, Any]) -> dict[str, jwk.JWK]:
    """Signing keys by ``kid``; encryption keys and keys we cannot load are skipped."""
    keys: dict[str, jwk.JWK] = {}
    for entry in jwks.get("keys", []):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("kty") not in {"RSA", "EC"}:
            continue
        try:
            keys[kid] = jwk.JWK(**entry)
        except (JWException, ValueError, TypeError):
            log.warning("skipping a realm key that does not load", kid=kid)
    return keys


class TokenVerifier:
    """Verifies access tokens and turns them into an :class:`Identity`."""

    def __init__(
        self,
        source: KeySource,
        *,
        issuer: str,
        audience: str,
        admin_role: str = "admin",
        required_role: str = "",
        leeway_s: float = 5.0,
        refresh_interval_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self.issuer = issuer
        self.audience = audience
        self.admin_role = admin_role
        self.required_role = required_role
        self._leeway = leeway_s
        self._refresh_interval = refresh_interval_s
        self._clock = clock
        self._keys: dict[str, jwk.JWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def refresh(self, *, force: bool = False) -> bool:
        """Fetch the realm keys unless fetched less than ``refresh_interval_s`` ago.

        Returns whether a fetch happened. Failures are logged and leave the cache as it
        was: a Keycloak outage must not throw away keys that still verify tokens.
        """
        async with self._lock:
            now = time.monotonic()
            if not force and self._fetched_at is not None and now - self._fetched_at < self._refresh_interval:
                return False
            self._fetched_at = now
            try:
                jwks = await self._source.fetch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 (any fetch failure keeps the old keys)
                log.warning("could not fetch the realm's signing keys", error=type(exc).__name__)
                return False
            keys = _sig_keys(jwks)
            if keys:
                self._keys = keys
                log.info("realm signing keys loaded", kids=sorted(keys))
            return True

    async def _key(self, kid: str) -> jwk.JWK:
        key = self._keys.get(kid)
        if key is None:
            await self.refresh()
            key = self._keys.get(kid)
        if key is None:
            if not self._keys:
                raise AuthError("Authentication unavailable: the realm's keys cannot be fetched", 503)
            raise AuthError("Invalid token: unknown signing key")
        return key

    async def verify(self, token: str) -> Identity:
        """The caller named by a valid access token; :class:`AuthError` otherwise."""
        header = _header(token)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise AuthError("Invalid token: signature algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("Invalid token: no key id")
        key = await self._key(kid)
        try:
            signed = jws.JWS()
            signed.deserialize(token)
            signed.verify(key, alg=alg)
            claims = json.loads(signed.payload)
        except (JWException, ValueError, TypeError):
            raise AuthError("Invalid token: bad signature") from None
        if not isinstance(claims, dict):
            raise AuthError("Invalid token: claims are not an object")
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        now = self._clock()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or not _is_number(exp):
            raise AuthError("Invalid token: no expiry")
        if now > float(exp) + self._leeway:
            raise AuthError("Invalid token: expired")
        nbf = claims.get("nbf")
        if nbf is not None and (
            not isinstance(nbf, int | float) or not _is_number(nbf) or now + self._leeway < nbf
        ):
            raise AuthError("Invalid token: not valid yet")
        if claims.get("iss") != self.issuer:
            raise AuthError("Invalid token: wrong issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audience not in audiences:
            raise AuthError("Invalid token: wrong audience")
        typ = claims.get("typ")
        if typ is not None and str(typ).lower() != "bearer":
            raise AuthError("Invalid token: not an access token")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not OWNER_RE.fullmatch(sub) or sub in {".", ".."}:
            raise AuthError("Invalid token: unusable subject")
        realm_access = claims.get("realm_access")
        raw_roles = realm_access.get("roles", []) if isinstance(realm_access, dict) else []
        if not isinstance(raw_roles, list):
            raw_roles = []
        roles = frozenset(r for r in raw_roles if isinstance(r, str))
        admin = bool(self.admin_role) and self.admin_role in roles
        if self.required_role and not admin and self.required_role not in roles:
            raise AuthError(f"Forbidden: the {self.required_role!r} role is required", 403)
        username = claims.get("preferred_username")
        return Identity(
            sub=sub,
            username=username if isinstance(username, str) else "",
            roles=roles,
            is_admin=admin,
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
