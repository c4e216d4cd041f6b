"""Authentication of api callers: Keycloak bearer tokens verified locally.

The api never calls Keycloak per request: it verifies the token's signature against
the realm's public keys (fetched once with python-keycloak, cached, refreshed when a
token names a key id it has not seen) and checks issuer, audience and times itself.
"""

from caesar_api.auth.identity import (
    ANONYMOUS_IDENTITY,
    IDENTITY_KEY,
    Identity,
    acts_as_admin,
    identity_of,
    is_admin,
)
from caesar_api.auth.tokens import AuthError, KeycloakKeys, TokenVerifier

__all__ = [
    "ANONYMOUS_IDENTITY",
    "IDENTITY_KEY",
    "AuthError",
    "Identity",
    "KeycloakKeys",
    "TokenVerifier",
    "acts_as_admin",
    "identity_of",
    "is_admin",
]
