"""``caesar`` with authentication on: login against the real Keycloak, then commands with the token.

Alice logs in with the password grant of the development realm (password from the
environment, never an argument); the cache is private; her commands carry the token and
she sees her file; Bob, logged in separately, sees none of it and gets "not found" for it;
an expired access token is refreshed from the cached refresh token without a new login;
after ``logout`` the commands are refused with the authentication exit code. Carol logs
in with the device grant (the default), approved by a scripted browser on Keycloak's pages.
"""

from __future__ import annotations

import html
import json
import os
import re
import selectors
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest

from caesar_cli.tokens import load, save
from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.auth_support import KEYCLOAK_URL, PASSWORDS, REALM, claims_of, start_auth_stack

pytestmark = [pytest.mark.e2e, pytest.mark.keycloak]

CAESAR = str(Path(sys.executable).with_name("caesar"))


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_auth_stack(tmp_path_factory.mktemp("cli-auth-stack"))


def user_env(stack: Stack, config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAESAR_")}
    return {
        **env,
        "CAESAR_URL": stack.api,
        "CAESAR_KEYCLOAK_URL": KEYCLOAK_URL,
        "CAESAR_KEYCLOAK_REALM": REALM,
        "XDG_CONFIG_HOME": str(config),
        **extra,
    }


def caesar(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CAESAR, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def ok_json(env: dict[str, str], *args: str) -> Any:
    result = caesar(env, *args, "--json")
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def login(env: dict[str, str], user: str) -> Path:
    result = caesar({**env, "CAESAR_PASSWORD": PASSWORDS[user]}, "login", "--password", "-u", user)
    assert result.returncode == 0, result.stderr
    assert f"Logged in as {user}" in result.stderr
    assert PASSWORDS[user] not in result.stdout + result.stderr
    return Path(env["XDG_CONFIG_HOME"]) / "caesar" / "token.json"


def test_login_then_commands_carry_the_token(auth_stack: Stack, tmp_path: Path) -> None:
    alice = user_env(auth_stack, tmp_path / "alice")
    bob = user_env(auth_stack, tmp_path / "bob")

    anonymous = caesar(alice, "files")
    assert anonymous.returncode == 3, anonymous.stderr
    assert "caesar login" in anonymous.stderr
    wrong = caesar({**alice, "CAESAR_PASSWORD": "not-the-password"}, "login", "--password", "-u", "alice")
    assert wrong.returncode == 3
    assert not (tmp_path / "alice" / "caesar" / "token.json").exists()

    cache = login(alice, "alice")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    tokens = load(cache)
    assert tokens is not None
    assert tokens.refresh_token
    assert claims_of(tokens.access_token)["preferred_username"] == "alice"

    image = tmp_path / "mine.fits"
    write_simulation(SimulationSpec(size=64, seed=4, n_sources=1), image)
    file_id = ok_json(alice, "upload", str(image))["file_id"]
    assert file_id in {f["file_id"] for f in ok_json(alice, "files", "--limit", "0")}
    assert "aegean" in {a["name"] for a in ok_json(alice, "apps")}

    login(bob, "bob")
    assert file_id not in {f["file_id"] for f in ok_json(bob, "files", "--limit", "0")}
    foreign = caesar(bob, "rm", file_id)
    assert foreign.returncode == 4, foreign.stderr

    # An expired access token: the next command refreshes it with the cached refresh token.
    save(cache, replace(tokens, expires_at=0.0))
    assert file_id in {f["file_id"] for f in ok_json(alice, "files", "--limit", "0")}
    refreshed = load(cache)
    assert refreshed is not None
    assert refreshed.access_token != tokens.access_token
    assert refreshed.expires_at > 0
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600

    out = caesar(alice, "logout")
    assert out.returncode == 0
    assert not cache.exists()
    after = caesar(alice, "files")
    assert after.returncode == 3


class Browser:
    """Keycloak's device approval pages, as a person's browser goes through them.

    Keycloak marks its cookies ``Secure``; over the local plain-HTTP Keycloak a browser
    would still send them to localhost, httpx does not, so they are kept here by hand.
    """

    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=False, timeout=15)
        self.cookies: dict[str, str] = {}

    def go(self, method: str, url: str, data: dict[str, str] | None = None) -> httpx.Response:
        for _ in range(10):
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
            resp = self.http.request(method, url, headers=headers, data=data)
            for raw in resp.headers.get_list("set-cookie"):
                cookie: SimpleCookie = SimpleCookie()
                cookie.load(raw.replace("SameSite=None", "").replace("Secure;", ""))
                self.cookies.update({k: m.value for k, m in cookie.items()})
            if resp.status_code not in (301, 302, 303):
                return resp
            url, method, data = str(resp.url.join(resp.headers["location"])), "GET", None
        raise AssertionError(f"too many redirects from {url}")

    def approve(self, verification_url: str, user: str) -> str:
        """Sign in as ``user`` and grant the CLI access; the text of the last page."""
        page = self.go("GET", verification_url)
        page = self.go("POST", self.form_action(page), {"username": user, "password": PASSWORDS[user]})
        if 'name="accept"' in page.text:  # the consent page of the public client
            code = re.search(r'name="code" value="([^"]+)"', page.text)
            assert code is not None, page.text[:500]
            page = self.go("POST", self.form_action(page), {"code": code.group(1), "accept": "Yes"})
        return page.text

    @staticmethod
    def form_action(page: httpx.Response) -> str:
        match = re.search(r'<form[^>]*action="([^"]+)"', page.text)
        assert match is not None, page.text[:500]
        return str(page.url.join(html.unescape(match.group(1))))


def read_until(proc: subprocess.Popen[str], pattern: str, timeout_s: float) -> re.Match[str]:
    """Read the process's stderr until ``pattern`` appears (a deadline, never a sleep)."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while (match := re.search(pattern, seen)) is None:
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {seen!r}"
            assert proc.poll() is None, f"exited {proc.returncode} without {pattern!r}: {seen!r}"
            if sel.select(left):
                seen += os.read(proc.stderr.fileno(), 4096).decode()
    return match


def test_device_login(auth_stack: Stack, tmp_path: Path) -> None:
    carol = user_env(auth_stack, tmp_path / "carol", COLUMNS="200")
    proc = subprocess.Popen(
        [CAESAR, "login"],
        env=carol,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        match = read_until(proc, r"Open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})", 30)
        url, code = match.group(1), match.group(2)
        assert url == f"{KEYCLOAK_URL}/realms/{REALM}/device"
        page = Browser().approve(f"{url}?user_code={code}", "carol")
        assert "Device Login Successful" in page
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cache = tmp_path / "carol" / "caesar" / "token.json"
    tokens = load(cache)
    assert tokens is not None
    assert claims_of(tokens.access_token)["preferred_username"] == "carol"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert isinstance(ok_json(carol, "files"), list)
