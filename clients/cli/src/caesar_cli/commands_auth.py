"""``login`` and ``logout``: a Keycloak session cached for the other commands."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Mapping
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from caesar_cli.app import command, session_of
from caesar_cli.oidc import OidcClient, Realm
from caesar_cli.tokens import TokenSet, load, remove, save

DEFAULT_KEYCLOAK_URL = "http://localhost:8180"


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: only to greet the user by name (the api verifies)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@command(help="Sign in with Keycloak and cache the token (device login by default).")
def login(
    ctx: typer.Context,
    password: Annotated[
        bool,
        typer.Option(
            "--password",
            help="Username and password grant (development realm) instead of device login; the "
            "password comes from CAESAR_PASSWORD or a prompt, never from an argument.",
        ),
    ] = False,
    username: Annotated[
        str | None, typer.Option("--username", "-u", envvar="CAESAR_USERNAME", help="With --password.")
    ] = None,
    keycloak_url: Annotated[
        str, typer.Option("--keycloak-url", envvar="CAESAR_KEYCLOAK_URL", help="Keycloak base URL.")
    ] = DEFAULT_KEYCLOAK_URL,
    realm: Annotated[str, typer.Option("--realm", envvar="CAESAR_KEYCLOAK_REALM")] = "caesar",
    client_id: Annotated[str, typer.Option("--client-id", envvar="CAESAR_CLIENT_ID")] = "caesar-cli",
) -> None:
    session = session_of(ctx)
    oidc = OidcClient(session.http, Realm(keycloak_url, realm, client_id))
    tokens = _password_login(oidc, session.env, username) if password else _device_login(oidc, session.err)
    save(session.token_cache, tokens)
    claims = claims_of(tokens.access_token)
    who = claims.get("preferred_username") or claims.get("sub") or "?"
    typer.echo(f"Logged in as {who} (token cached in {session.token_cache}).", err=True)


def _password_login(oidc: OidcClient, env: Mapping[str, str], username: str | None) -> TokenSet:
    user = username or typer.prompt("Username", err=True)
    secret = env.get("CAESAR_PASSWORD") or typer.prompt("Password", hide_input=True, err=True)
    return oidc.password(user, secret)


def _device_login(oidc: OidcClient, console: Console) -> TokenSet:
    device = oidc.start_device()
    console.print(
        f"Open [bold]{device.verification_uri}[/bold] and enter the code [bold]{device.user_code}[/bold]"
    )
    if device.verification_uri_complete:
        console.print(f"(or open {device.verification_uri_complete})")
    with console.status("Waiting for the login to be approved..."):
        return oidc.poll_device(device)


@command(help="Forget the cached login (and end the Keycloak session when it can be reached).")
def logout(ctx: typer.Context) -> None:
    session = session_of(ctx)
    tokens = load(session.token_cache)
    if tokens is not None and tokens.refresh_token:
        _end_session(session.http, tokens)
    if remove(session.token_cache):
        typer.echo("Logged out.", err=True)
    else:
        typer.echo("Not logged in.", err=True)


def _end_session(http: httpx.Client, tokens: TokenSet) -> None:
    """Best effort: Keycloak revokes the refresh token; the local file goes regardless."""
    url = tokens.token_endpoint.rsplit("/", 1)[0] + "/logout"
    with contextlib.suppress(httpx.HTTPError):
        http.post(
            url, data={"client_id": tokens.client_id, "refresh_token": tokens.refresh_token or ""}, timeout=5
        )
