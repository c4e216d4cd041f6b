"""Keycloak sign-in over OAuth 2.0: device authorization, password and refresh grants.

The device grant (RFC 8628) is the default because the user's password then never passes
through the terminal: the user approves a short code in a browser, here we only poll.
The password grant exists for the development realm and for scripts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx

from caesar_cli.codes import ExitCode
from caesar_cli.errors import CliError
from caesar_cli.tokens import TokenSet, token_set_from_grant

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class Realm:
    """Where to sign in: a Keycloak realm and the public client of the CLI."""

    keycloak_url: str
    realm: str
    client_id: str

    @property
    def issuer(self) -> str:
        return f"{self.keycloak_url.rstrip('/')}/realms/{self.realm}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def device_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/auth/device"


@dataclass(frozen=True)
class DeviceAuthorization:
    """What the user must do in a browser, and how often we may ask whether they did."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


class PollOutcome(Enum):
    PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"
    GRANTED = "granted"


def poll_outcome(status: int, body: Mapping[str, Any]) -> PollOutcome:
    """What one answer of the token endpoint to a device-code poll means.

    Raises :class:`CliError` for the answers that end the login (denied, expired, other).
    """
    if status == 200 and "access_token" in body:
        return PollOutcome.GRANTED
    error = str(body.get("error", ""))
    if error == PollOutcome.PENDING.value:
        return PollOutcome.PENDING
    if error == PollOutcome.SLOW_DOWN.value:
        return PollOutcome.SLOW_DOWN
    if error == "access_denied":
        raise CliError("Login denied in the browser.", ExitCode.AUTH)
    if error == "expired_token":
        raise CliError(
            "The login code expired before it was approved; run `caesar login` again.", ExitCode.AUTH
        )
    raise CliError(_oauth_message("Login failed", status, body), ExitCode.AUTH)


def _oauth_message(what: str, status: int, body: Mapping[str, Any]) -> str:
    error = body.get("error_description") or body.get("error") or f"HTTP {status}"
    return f"{what}: {error}"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    return (
        data if isinstance(data, dict) else {"error": response.text[:200] or f"HTTP {response.status_code}"}
    )


class OidcClient:
    """The token and device endpoints of one realm, for one public client."""

    def __init__(
        self,
        http: httpx.Client,
        realm: Realm,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._realm = realm
        self._clock = clock
        self._sleep = sleep

    def _post(self, url: str, form: Mapping[str, str]) -> httpx.Response:
        try:
            return self._http.post(url, data=dict(form))
        except httpx.HTTPError as exc:
            raise CliError(f"Cannot reach Keycloak at {url}: {exc}", ExitCode.SERVER) from exc

    def _tokens(self, body: Mapping[str, Any]) -> TokenSet:
        return token_set_from_grant(body, self._clock(), self._realm.token_endpoint, self._realm.client_id)

    def password(self, username: str, password: str) -> TokenSet:
        """Resource owner password grant (the development realm allows it)."""
        resp = self._post(
            self._realm.token_endpoint,
            {
                "grant_type": "password",
                "client_id": self._realm.client_id,
                "username": username,
                "password": password,
            },
        )
        body = _json(resp)
        if resp.status_code != 200 or "access_token" not in body:
            code = ExitCode.SERVER if resp.status_code >= 500 else ExitCode.AUTH
            raise CliError(_oauth_message("Login failed", resp.status_code, body), code)
        return self._tokens(body)

    def start_device(self) -> DeviceAuthorization:
        """Ask for a user code to show; the user approves it at the verification URL."""
        resp = self._post(self._realm.device_endpoint, {"client_id": self._realm.client_id})
        body = _json(resp)
        if resp.status_code != 200 or "device_code" not in body:
            code = ExitCode.SERVER if resp.status_code >= 500 else ExitCode.AUTH
            raise CliError(_oauth_message("Device login refused", resp.status_code, body), code)
        return DeviceAuthorization(
            device_code=str(body["device_code"]),
            user_code=str(body["user_code"]),
            verification_uri=str(body["verification_uri"]),
            verification_uri_complete=body.get("verification_uri_complete"),
            expires_in=float(body.get("expires_in", 600)),
            interval=float(body.get("interval", 5)),
        )

    def poll_device(self, device: DeviceAuthorization) -> TokenSet:
        """Poll until the user approves, honouring ``interval`` and ``slow_down`` (RFC 8628)."""
        deadline = self._clock() + device.expires_in
        interval = device.interval
        form = {
            "grant_type": DEVICE_GRANT,
            "device_code": device.device_code,
            "client_id": self._realm.client_id,
        }
        while True:
            self._sleep(interval)
            resp = self._post(self._realm.token_endpoint, form)
            body = _json(resp)
            outcome = poll_outcome(resp.status_code, body)
            if outcome is PollOutcome.GRANTED:
                return self._tokens(body)
            if outcome is PollOutcome.SLOW_DOWN:
                interval += 5
            if self._clock() >= deadline:
                raise CliError(
                    "The login code expired before it was approved; run `caesar login` again.", ExitCode.AUTH
                )


def refresh_grant(http: httpx.Client, tokens: TokenSet, now: float) -> TokenSet:
    """New tokens from the cached refresh token, at the endpoint the login used.

    A refused refresh token ends the session (exit 3); Keycloak unreachable or failing is
    a server error (exit 5), so a script can tell "log in again" from "retry".
    """
    if not tokens.refresh_token:
        raise CliError("Your session has expired; run `caesar login` again.", ExitCode.AUTH)
    form = {
        "grant_type": "refresh_token",
        "client_id": tokens.client_id,
        "refresh_token": tokens.refresh_token,
    }
    try:
        resp = http.post(tokens.token_endpoint, data=form)
    except httpx.HTTPError as exc:
        raise CliError(f"Cannot reach Keycloak at {tokens.token_endpoint}: {exc}", ExitCode.SERVER) from exc
    body = _json(resp)
    if resp.status_code >= 500:
        raise CliError(_oauth_message("Token refresh failed", resp.status_code, body), ExitCode.SERVER)
    if resp.status_code != 200 or "access_token" not in body:
        raise CliError("Your session has expired; run `caesar login` again.", ExitCode.AUTH)
    return token_set_from_grant(body, now, tokens.token_endpoint, tokens.client_id)
