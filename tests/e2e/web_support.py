"""Driving the web page in Debian's Chromium with Playwright, for the web tests and the bench.

Playwright's own browser download cannot work where only package registries are
reachable, so the browser is Debian's ``chromium`` (``scripts/browser.sh install``),
launched with ``executable_path``; axe-core comes from npm (``scripts/axe.sh install``)
and is evaluated in the page over the DevTools protocol, which the page's strict CSP does
not govern (a ``<script>`` tag would be refused, as it should be).

In CI (``CI=true``) or under ``scripts/test.sh`` a missing browser or axe-core fails the
test; elsewhere it skips with the command that installs it.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("CAESAR_UPDATE_SCREENSHOTS") == "1"
# axe-core impacts that fail a scan (issue 15: "no serious violations").
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


def _tool(script: str, what: str) -> str:
    """The path ``scripts/<script> path`` prints; fail in CI, skip elsewhere, if missing."""
    result = subprocess.run(
        [str(REPO / "scripts" / script), "path"], capture_output=True, text=True, check=False
    )
    path = result.stdout.strip()
    if result.returncode == 0 and path and Path(path).exists():
        return path
    message = f"{what} is not installed: run scripts/{script} install"
    if tool_required():
        pytest.fail(f"{message} (CI and scripts/test.sh install it)")
    pytest.skip(message)


def tool_required() -> bool:
    """CI, or scripts/test.sh (which installed the tools): a missing tool fails, never skips."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"} or bool(
        os.environ.get("CAESAR_TEST_RUN_ID")
    )


def chromium_path() -> str:
    return _tool("browser.sh", "Chromium")


def axe_source() -> str:
    return Path(_tool("axe.sh", "axe-core")).read_text()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class PageErrors:
    """Console errors and uncaught exceptions of a page (CSP violations are console errors)."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", lambda msg: self.messages.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.messages.append(f"uncaught: {exc}"))

    def unexpected(self, *allowed: str) -> list[str]:
        """Messages that contain none of ``allowed`` (e.g. an expected 404 of a probe)."""
        return [m for m in self.messages if not any(a in m for a in allowed)]


def screenshot(page: Page, name: str, directory: Path) -> Path:
    """A full-page screenshot kept as a test artefact; with ``CAESAR_UPDATE_SCREENSHOTS=1``
    it also replaces its namesake in docs/screenshots/ (the pictures the README shows are
    refreshed on purpose only, and only those are kept there)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if UPDATE_SCREENSHOTS and (SCREENSHOTS / path.name).is_file():
        shutil.copyfile(path, SCREENSHOTS / path.name)
    return path


def axe_violations(page: Page, source: str) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA and best-practice violations of the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(f"() => {{ {source}\n}}")
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            # axe.min.js defines window.axe at top level; evaluated in a function it may
            # bind to the function's scope only: expose it explicitly.
            page.evaluate(f"() => {{ {source}\n window.axe = axe; }}")
    result: dict[str, Any] = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def blocking(violations: list[dict[str, Any]]) -> list[str]:
    """The serious and critical violations, one line each, for an assertion message."""
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in violations
        if v.get("impact") in BLOCKING_IMPACTS
    ]


def drop_file(page: Page, selector: str, path: Path, mime: str = "application/fits") -> None:
    """Drag and drop ``path`` onto ``selector`` as a user dropping it from their desktop
    would: a ``drop`` event whose DataTransfer holds the file."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    transfer = page.evaluate_handle(
        """([data, name, mime]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [data, path.name, mime],
    )
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def keycloak_login(page: Page, user: str, password: str) -> None:
    """Fill the realm's login form (Keycloak's own page) and submit it."""
    page.locator("#username").fill(user)
    page.locator("#password").fill(password)
    page.locator("#kc-login").click()
