"""``caesar`` login state: the token cache's permissions, expiry, refresh and the OAuth flows."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from caesar_cli.auth import TokenSource
from caesar_cli.codes import ExitCode
from caesar_cli.errors import CliError
from caesar_cli.oidc import DEVICE_GRANT, DeviceAuthorization, OidcClient, PollOutcome, Realm, poll_outcome
from caesar_cli.tokens import EXPIRY_SKEW_S, TokenSet, cache_path, load, remove, save, token_set_from_grant

REALM = Realm("http://kc.test", "caesar", "caesar-cli")
TOKEN_URL = REALM.token_endpoint


def tokens(now: float, *, access_in: float = 300, refresh_in: float | None = 1800) -> TokenSet:
    return TokenSet(
        access_token="access-1",
        expires_at=now + access_in,
        refresh_token="refresh-1" if refresh_in is not None else None,
        refresh_expires_at=now + refresh_in if refresh_in is not None else None,
        token_endpoint=TOKEN_URL,
        client_id="caesar-cli",
    )


def grant(access: str = "access-2", refresh: str = "refresh-2") -> dict[str, Any]:
    return {"access_token": access, "expires_in": 300, "refresh_token": refresh, "refresh_expires_in": 1800}


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def test_cache_path_follows_xdg_then_home(tmp_path: Path) -> None:
    assert cache_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/caesar/token.json")
    assert cache_path({"HOME": "/home/u"}) == Path("/home/u/.config/caesar/token.json")


def test_cache_is_private_from_creation(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "caesar" / "token.json"
    old = os.umask(0o000)  # the widest umask: the modes must not depend on it
    try:
        save(path, tokens(1000.0))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load(path) == tokens(1000.0)
    assert [p.name for p in path.parent.iterdir()] == ["token.json"]  # no temporary left behind


def test_a_wider_existing_directory_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "caesar" / "token.json"
    path.parent.mkdir(mode=0o755)
    os.chmod(path.parent, 0o755)  # noqa: S103 (the point of the test)
    save(path, tokens(0.0))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_unreadable_cache_counts_as_no_login_and_remove_reports_it(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    assert load(path) is None
    path.write_text("{not json")
    assert load(path) is None
    path.write_text(json.dumps({"access_token": "x"}))
    assert load(path) is None
    assert remove(path) is True
    assert remove(path) is False


def test_expiry_has_a_margin() -> None:
    t = tokens(0.0, access_in=100)
    assert t.access_valid(100 - EXPIRY_SKEW_S - 1)
    assert not t.access_valid(100 - EXPIRY_SKEW_S + 1)
    assert t.refreshable(1000)
    assert not t.refreshable(1800)
    assert not tokens(0.0, refresh_in=None).refreshable(0)


def test_grant_answer_becomes_a_token_set() -> None:
    t = token_set_from_grant({**grant(), "refresh_expires_in": 0}, 50.0, TOKEN_URL, "c")
    assert (t.access_token, t.expires_at, t.refresh_token, t.refresh_expires_at) == (
        "access-2",
        350.0,
        "refresh-2",
        None,
    )


def test_env_token_wins_and_no_login_means_no_header(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    save(path, tokens(0.0))
    never = client(lambda r: pytest.fail("no request expected"))
    assert TokenSource("from-env", path, never, clock=lambda: 0.0).get() == "from-env"
    assert TokenSource(None, tmp_path / "none.json", never).get() is None
    assert TokenSource(None, path, never, clock=lambda: 10.0).get() == "access-1"


def test_expired_access_token_is_refreshed_and_recached(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    save(path, tokens(0.0))
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == TOKEN_URL
        seen.append(form(request))
        return httpx.Response(200, json=grant())

    source = TokenSource(None, path, client(handler), clock=lambda: 1000.0)
    assert source.get() == "access-2"
    assert source.get() == "access-2"  # valid now: no second refresh
    assert seen == [{"grant_type": "refresh_token", "client_id": "caesar-cli", "refresh_token": "refresh-1"}]
    cached = load(path)
    assert cached is not None
    assert (cached.access_token, cached.refresh_token, cached.expires_at) == ("access-2", "refresh-2", 1300.0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (httpx.Response(400, json={"error": "invalid_grant"}), ExitCode.AUTH),
        (httpx.Response(503, text="down"), ExitCode.SERVER),
    ],
)
def test_refused_or_failed_refresh(tmp_path: Path, answer: httpx.Response, code: ExitCode) -> None:
    path = tmp_path / "token.json"
    save(path, tokens(0.0))
    source = TokenSource(None, path, client(lambda r: answer), clock=lambda: 1000.0)
    with pytest.raises(CliError) as caught:
        source.get()
    assert caught.value.code == code


def test_session_past_its_refresh_lifetime_asks_to_log_in(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    save(path, tokens(0.0))
    source = TokenSource(None, path, client(lambda r: pytest.fail("no refresh")), clock=lambda: 5000.0)
    with pytest.raises(CliError, match="caesar login") as caught:
        source.get()
    assert caught.value.code == ExitCode.AUTH


def test_unreachable_keycloak_is_a_server_error(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(CliError) as caught:
        OidcClient(client(handler), REALM).password("alice", "pw")
    assert caught.value.code == ExitCode.SERVER


def test_password_grant_sends_the_form_and_reports_bad_credentials() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = form(request)
        if body["password"] == "right":
            assert body == {
                "grant_type": "password",
                "client_id": "caesar-cli",
                "username": "alice",
                "password": "right",
            }
            return httpx.Response(200, json=grant())
        return httpx.Response(
            401, json={"error": "invalid_grant", "error_description": "Invalid user credentials"}
        )

    oidc = OidcClient(client(handler), REALM, clock=lambda: 10.0)
    assert oidc.password("alice", "right").access_token == "access-2"
    with pytest.raises(CliError, match="Invalid user credentials") as caught:
        oidc.password("alice", "wrong")
    assert caught.value.code == ExitCode.AUTH


def device(expires_in: float = 600, interval: float = 5) -> DeviceAuthorization:
    return DeviceAuthorization("dev-code", "ABCD-EFGH", "http://kc.test/device", None, expires_in, interval)


def test_device_flow_polls_at_the_interval_and_slows_down_when_told() -> None:
    answers = [
        httpx.Response(400, json={"error": "authorization_pending"}),
        httpx.Response(400, json={"error": "slow_down"}),
        httpx.Response(400, json={"error": "authorization_pending"}),
        httpx.Response(200, json=grant()),
    ]
    sent: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/device"):
            return httpx.Response(
                200,
                json={
                    "device_code": "dev-code",
                    "user_code": "ABCD-EFGH",
                    "verification_uri": "http://kc.test/device",
                    "expires_in": 600,
                    "interval": 5,
                },
            )
        sent.append(form(request))
        return answers.pop(0)

    sleeps: list[float] = []
    oidc = OidcClient(client(handler), REALM, clock=lambda: 0.0, sleep=sleeps.append)
    started = oidc.start_device()
    assert (started.user_code, started.interval) == ("ABCD-EFGH", 5.0)
    assert oidc.poll_device(started).access_token == "access-2"
    assert sleeps == [5, 5, 10, 10]
    assert sent[0] == {"grant_type": DEVICE_GRANT, "device_code": "dev-code", "client_id": "caesar-cli"}


def test_device_flow_gives_up_when_the_code_expires() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    oidc = OidcClient(
        client(lambda r: httpx.Response(400, json={"error": "authorization_pending"})),
        REALM,
        clock=lambda: now[0],
        sleep=sleep,
    )
    with pytest.raises(CliError, match="expired") as caught:
        oidc.poll_device(device(expires_in=20, interval=5))
    assert caught.value.code == ExitCode.AUTH
    assert now[0] == 20


@pytest.mark.parametrize(
    ("body", "message"),
    [({"error": "access_denied"}, "denied"), ({"error": "expired_token"}, "expired"), ({"error": "x"}, "x")],
)
def test_poll_answers_that_end_the_login(body: dict[str, str], message: str) -> None:
    with pytest.raises(CliError, match=message) as caught:
        poll_outcome(400, body)
    assert caught.value.code == ExitCode.AUTH


def test_poll_answers_that_continue() -> None:
    assert poll_outcome(400, {"error": "authorization_pending"}) is PollOutcome.PENDING
    assert poll_outcome(400, {"error": "slow_down"}) is PollOutcome.SLOW_DOWN
    assert poll_outcome(200, grant()) is PollOutcome.GRANTED
