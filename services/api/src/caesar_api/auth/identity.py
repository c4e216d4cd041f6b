"""Who is calling: the identity the auth middleware attaches to every request.

Handlers never look at tokens; they ask :func:`identity_of` for the caller, whose
``owner`` (the token subject, or ``anonymous`` with authentication off) is the only
thing that reaches queries and paths, and whose ``is_admin`` lifts the owner filter on
lookups by id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Identity:
    """The caller: ``sub`` is the owner of what they create, ``username`` is for display."""

    sub: str
    username: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    is_admin: bool = False

    @property
    def owner(self) -> str:
        return self.sub


ANONYMOUS_IDENTITY = Identity(sub=ANONYMOUS, username=ANONYMOUS)

IDENTITY_KEY: web.RequestKey[Identity] = web.RequestKey("caesar_identity", Identity)
# The verifier's ``verify`` for handlers that read a token from the body (uploads).
TokenCheck = Callable[[str], Awaitable[Identity]]
TOKEN_CHECK_KEY: web.RequestKey[TokenCheck] = web.RequestKey("caesar_token_check", TokenCheck)  # type: ignore[arg-type]


def identity_of(request: web.Request) -> Identity:
    """The identity the middleware attached; anonymous if none (public routes)."""
    identity = request.get(IDENTITY_KEY)
    return identity if isinstance(identity, Identity) else ANONYMOUS_IDENTITY


def is_admin(request: web.Request) -> bool:
    """Whether the caller may see every user's files and jobs."""
    return identity_of(request).is_admin


def acts_as_admin(request: web.Request, auth_enabled: bool) -> bool:
    """Whether the caller may use the admin-only routes (dead letters, everyone's usage).

    With authentication off the stack has a single user, ``anonymous``, who is also its
    operator; with it on, only holders of the admin realm role.
    """
    return not auth_enabled or is_admin(request)


# With auth on, a multipart upload without an Authorization header may carry its token
# in an ``access_token`` part; until the upload handler has read it the owner is "".
DEFERRED_IDENTITY = Identity(sub="")
