"""The web page with authentication on: the real Keycloak, Debian's Chromium, the live stack.

Alice signs in through Keycloak's own login page (authorization code with PKCE, the
realm's public browser client ``caesar-web``), uploads with the file picker, runs Aegean,
and downloads her catalogue through the token-carrying path. Bob, signed in in another
browser context, sees none of it: not in his list, and her job's page says there is no
such job. Without signing in, the page shows only the sign-in view and the API refuses
the page's requests. The sign-in page passes the axe-core scan.

The development realm lets the browser client come back to http://127.0.0.1 on any port
(Keycloak ignores a loopback redirect URI's port, RFC 8252), so the stack's api can run on
a random port as every e2e stack does.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.auth_support import KEYCLOAK_URL, PASSWORDS, REALM, start_auth_stack
from tests.e2e.web_support import (
    PageErrors,
    axe_source,
    axe_violations,
    blocking,
    chromium,
    keycloak_login,
    screenshot,
)

pytestmark = [pytest.mark.e2e, pytest.mark.keycloak]

JOB_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_auth_stack(tmp_path_factory.mktemp("web-auth-stack"), CAESAR_SLOTS="2")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def new_page(browser: Browser, stack: Stack) -> Page:
    context = browser.new_context(
        base_url=stack.api, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


def sign_in(page: Page, user: str) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.locator("#sign-in-main").click()
    page.wait_for_url(re.compile(rf"^{re.escape(KEYCLOAK_URL)}/"))
    keycloak_login(page, user, PASSWORDS[user])
    expect(page.locator("#user-name")).to_have_text(f"Signed in as {user}")
    # The code and state are gone from the address bar once exchanged.
    assert "code=" not in page.url


def test_config_names_the_realm_and_the_browser_client(auth_stack: Stack) -> None:
    with urllib.request.urlopen(f"{auth_stack.api}/web/config.json", timeout=30) as resp:  # noqa: S310
        config = json.load(resp)
    assert config["auth_enabled"] is True
    assert config["issuer"] == f"{KEYCLOAK_URL}/realms/{REALM}"
    assert config["client_id"] == "caesar-web"
    with urllib.request.urlopen(f"{auth_stack.api}/", timeout=30) as resp:  # noqa: S310
        csp = resp.headers["Content-Security-Policy"]
    # The page may call Keycloak's token endpoint, and nothing else off its own origin.
    assert f"connect-src 'self' {KEYCLOAK_URL}" in csp
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{auth_stack.api}/api/v2/jobs", timeout=30)  # noqa: S310
    assert refused.value.code == 401


def test_sign_in_run_download_and_isolation(auth_stack: Stack, browser: Browser, tmp_path: Path) -> None:
    image = tmp_path / "field.fits"
    write_simulation(SimulationSpec(size=128, seed=21, n_sources=10), image, tmp_path / "truth.ecsv")
    alice = new_page(browser, auth_stack)
    errors = PageErrors(alice)
    alice.goto("/")
    expect(alice.locator("#view-signin")).to_be_visible()
    expect(alice.locator("#view-run")).to_be_hidden()
    screenshot(alice, "web-signin", tmp_path)
    problems = blocking(axe_violations(alice, axe_source()))
    assert not problems, f"sign-in page: {problems}"

    sign_in(alice, "alice")
    alice.locator("#file-input").set_input_files(str(image))
    expect(alice.locator("#upload-label")).to_have_text(f"Uploaded {image.name}")
    expect(alice.locator("#facts")).to_contain_text("128 \u00d7 128")
    alice.locator("#app-select").select_option("aegean")
    alice.locator("#submit-job").click()
    expect(alice).to_have_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job_id = alice.url.rsplit("/", 1)[1]
    expect(alice.locator("#job-facts .state")).to_have_text("SUCCESS", timeout=JOB_TIMEOUT_MS)
    alice.wait_for_function("() => document.getElementById('preview-img').naturalWidth > 0")
    expect(alice.locator("#catalog-table tbody tr").first).to_be_visible()
    expect(alice.locator("#log-text")).not_to_have_text("Loading…")
    # A download needs the token: the page fetches it and saves the blob.
    with alice.expect_download() as download_info:
        alice.get_by_role("link", name="Catalogue: VOTable").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == f"{job_id}-sources.vot"
    assert b"<VOTABLE" in saved.read_bytes()
    alice.get_by_role("link", name="Jobs", exact=True).click()
    expect(alice.locator(f"#jobs-body tr[data-job-id='{job_id}']")).to_contain_text("SUCCESS")
    assert not errors.unexpected(), errors.messages

    bob = new_page(browser, auth_stack)
    sign_in(bob, "bob")
    bob.get_by_role("link", name="Jobs", exact=True).click()
    expect(bob.locator("#jobs-table")).to_have_attribute("data-rendered", re.compile(r"^\d+$"))
    expect(bob.locator(f"#jobs-body tr[data-job-id='{job_id}']")).to_have_count(0)
    bob.goto(f"/#/jobs/{job_id}")
    expect(bob.locator("#job-title")).to_have_text("Job not found")
    expect(bob.locator("#job-missing")).to_be_visible()
    expect(bob.locator("#job-results")).to_be_hidden()
    screenshot(bob, "web-other-user", tmp_path)
    bob.context.close()
    alice.context.close()
