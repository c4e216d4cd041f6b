"""The web page in a real browser (Debian's Chromium), authentication off, on the live stack.

The whole flow a user makes: drop a simulated sky image on the page (progress bar, the
header facts the api recorded, a thumbnail drawn in the browser), run Aegean with the
generated form, follow the job to SUCCESS, look at the preview with the sources drawn
over it, sort the catalogue, download it, read the logs and the manifest, see the job in
the live list and the usage page. Then: the form refuses bad values before sending and
shows the server's 422 at the fields; a running job is cancelled from the page. Every page
is screenshotted (test artefacts) and scanned with axe-core: no serious or critical
violation. The page loads with a strict CSP and logs no error (a CSP violation is one).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.wcs import WCS
from playwright.sync_api import Browser, Page, expect

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation
from tests.e2e.web_support import (
    PageErrors,
    axe_source,
    axe_violations,
    blocking,
    chromium,
    drop_file,
    screenshot,
)

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web-image")
    path = root / "field.fits"
    write_simulation(SimulationSpec(size=128, seed=11, n_sources=12), path, root / "truth.ecsv")
    return path


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(
        base_url=stack.api, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def api_json(stack: Stack, path: str) -> Any:
    with urllib.request.urlopen(f"{stack.api}{path}", timeout=30) as resp:  # noqa: S310 (local stack)
        return json.load(resp)


def assert_accessible(page: Page, axe: str, where: str) -> None:
    problems = blocking(axe_violations(page, axe))
    assert not problems, f"{where}: {problems}"


def check_overlay(page: Page, stack: Stack, job_id: str, catalog: dict[str, Any]) -> None:
    """With the runner's ``preview.json`` every source inside the image is outlined where
    astropy puts it on the PNG; without one nothing is drawn over the PNG."""
    names = [f["name"] for f in api_json(stack, f"/api/v2/jobs/{job_id}/files")["files"]]
    markers = page.locator("#preview-overlay ellipse")
    if "preview.json" not in names:
        expect(markers).to_have_count(0)
        return
    meta = api_json(stack, f"/api/v2/jobs/{job_id}/files/preview.json")
    x0, y0, x1, y1 = meta["axes_box"]
    ny, nx = meta["image_shape"]
    wcs = WCS(meta["wcs"])
    ra = np.array([s["ra"] for s in catalog["sources"]], dtype=float)
    dec = np.array([s["dec"] for s in catalog["sources"]], dtype=float)
    px, py = wcs.world_to_pixel_values(ra, dec)
    png_x = x0 + (np.asarray(px) + 0.5) * (x1 - x0) / nx
    png_y = y1 - (np.asarray(py) + 0.5) * (y1 - y0) / ny
    inside = (png_x >= x0) & (png_x <= x1) & (png_y >= y0) & (png_y <= y1)
    expect(markers).to_have_count(int(inside.sum()))
    assert inside.sum() > 0
    drawn = markers.evaluate_all(
        "nodes => nodes.map(n => [Number(n.dataset.index), "
        "Number(n.getAttribute('cx')), Number(n.getAttribute('cy'))])"
    )
    for index, cx, cy in drawn:
        assert abs(cx - png_x[index]) < 0.05
        assert abs(cy - png_y[index]) < 0.05


def upload_by_drop(page: Page, image: Path) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Upload an image and run a source finder")).to_be_visible()
    drop_file(page, "#drop", image)
    expect(page.locator("#upload-label")).to_have_text(f"Uploaded {image.name}")
    expect(page.locator("#file-facts")).to_be_visible()


def test_page_headers_and_config(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.api}/", timeout=30) as resp:  # noqa: S310 (local stack)
        csp = resp.headers["Content-Security-Policy"]
        assert resp.headers["Content-Type"].startswith("text/html")
        assert resp.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert api_json(stack, "/web/config.json") == {
        "auth_enabled": False,
        "issuer": None,
        "client_id": None,
        "max_page_size": 1000,
    }


def test_upload_run_and_download(page: Page, stack: Stack, image: Path, axe: str, tmp_path: Path) -> None:
    errors = PageErrors(page)
    upload_by_drop(page, image)
    # The progress bar reached the end, the api's header facts and the thumbnail show.
    assert page.locator("#upload-bar").evaluate("bar => bar.value") == 100
    facts = page.locator("#facts")
    expect(facts).to_contain_text("128 \u00d7 128")
    expect(facts).to_contain_text("Beam")
    expect(facts).to_contain_text("MHz")
    expect(facts).to_contain_text("RA---SIN")
    expect(page.locator("#thumb-figure")).to_be_visible()
    # The thumbnail really has the image in it: not one flat grey.
    levels = page.locator("#thumb").evaluate(
        """c => new Set(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).size"""
    )
    assert levels > 20
    page.locator("#app-select").select_option("aegean")
    expect(page.locator("#opt-seedthr")).to_have_value("5")
    expect(page.locator("#opt-seedthr-help")).to_contain_text("Seed threshold")
    screenshot(page, "web-upload", tmp_path)
    assert_accessible(page, axe, "upload page")

    page.locator("#submit-job").click()
    expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#job-facts .state")).to_have_text("SUCCESS", timeout=JOB_TIMEOUT_MS)

    # Finished: nothing to cancel; authentication off: nothing to sign in or out of.
    expect(page.locator("#job-cancel")).to_be_hidden()
    expect(page.locator("#sign-in")).to_be_hidden()
    expect(page.locator("#sign-out")).to_be_hidden()
    # Results: preview with the sources over it, the catalogue, logs, manifest.
    expect(page.locator("#job-results")).to_be_visible()
    preview = page.locator("#preview-img")
    expect(preview).to_be_visible()
    page.wait_for_function("() => document.getElementById('preview-img').naturalWidth > 0")
    rows = page.locator("#catalog-table tbody tr")
    expect(rows.first).to_be_visible()
    catalog = api_json(stack, f"/api/v2/jobs/{job_id}/catalog?format=json")
    assert rows.count() == len(catalog["sources"]) > 0
    heading = page.locator("#catalog-table thead th").filter(has_text=re.compile(r"^ra \("))
    expect(heading).to_contain_text("deg")
    heading.get_by_role("button").click()
    expect(heading).to_have_attribute("aria-sort", "ascending")
    ra_index = [c["name"] for c in catalog["columns"]].index("ra")
    shown = [
        float(t)
        for t in page.locator(f"#catalog-table tbody tr td:nth-child({ra_index + 1})").all_inner_texts()
    ]
    assert shown == sorted(shown)
    heading.get_by_role("button").click()
    expect(heading).to_have_attribute("aria-sort", "descending")
    check_overlay(page, stack, job_id, catalog)
    expect(page.locator("#log-text")).not_to_have_text("")
    expect(page.locator("#log-text")).not_to_have_text("Loading…")
    assert "\x1b" not in page.locator("#log-text").inner_text()  # terminal colour codes removed
    manifest = api_json(stack, f"/api/v2/jobs/{job_id}/files")
    expect(page.locator("#manifest-table tbody tr")).to_have_count(len(manifest["files"]))

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Catalogue: CSV").click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.name == f"{job_id}-sources.csv"
    lines = saved.read_text().splitlines()
    assert lines[0].split(",")[:3] == [c["name"] for c in catalog["columns"]][:3]
    assert len(lines) == len(catalog["sources"]) + 1
    screenshot(page, "web-job", tmp_path)
    assert_accessible(page, axe, "job page")

    # The job list (live) and the usage page.
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator(f"#jobs-body tr[data-job-id='{job_id}']")
    expect(row).to_contain_text("SUCCESS")
    expect(page.locator("#live-state")).to_have_text(re.compile("^Live"))
    screenshot(page, "web-jobs", tmp_path)
    assert_accessible(page, axe, "job list")
    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.locator("#usage-totals")).to_contain_text("Completed")
    expect(page.locator("#usage-table tbody")).to_contain_text("aegean")
    screenshot(page, "web-usage", tmp_path)
    assert_accessible(page, axe, "usage page")
    # Control: the scan does catch a serious problem (a form field without a label).
    page.evaluate("() => document.getElementById('main').append(document.createElement('select'))")
    assert any(line.startswith("select-name") for line in blocking(axe_violations(page, axe)))

    # A phone-sized screen: the same page, nothing wider than the screen but the tables.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/#/jobs/{job_id}")
    expect(page.locator("#job-facts .state")).to_have_text("SUCCESS")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow} px wider than a phone's screen"
    screenshot(page, "web-job-phone", tmp_path)
    assert not errors.unexpected(), errors.messages


def test_form_checks_before_sending_and_shows_the_servers_errors(
    page: Page, stack: Stack, image: Path, tmp_path: Path
) -> None:
    posts: list[str] = []
    page.on(
        "request", lambda r: posts.append(r.url) if r.method == "POST" and "/api/v2/jobs" in r.url else None
    )
    upload_by_drop(page, image)
    page.locator("#app-select").select_option("aegean")
    # Out of range and not an integer: refused in the browser, nothing sent.
    page.locator("#opt-seedthr").fill("-1")
    page.locator("#opt-bkgbox").fill("7.5")
    page.locator("#submit-job").click()
    expect(page.locator("#opt-seedthr-error")).to_have_text("Must be at least 0.")
    expect(page.locator("#opt-bkgbox-error")).to_have_text("Enter a whole number.")
    expect(page.locator("#opt-seedthr")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#opt-bkgbox")).to_be_focused()  # the first bad field in the form's order
    expect(page.locator("#form-errors")).to_be_visible()
    assert posts == []
    screenshot(page, "web-form-errors", tmp_path)
    # Each value valid alone, but the app's rule between two is the server's to check:
    # its 422 is shown at both fields.
    page.locator("#opt-seedthr").fill("3")
    page.locator("#opt-bkgbox").fill("100")
    page.locator("#opt-mergethr").fill("4")
    page.locator("#submit-job").click()
    expect(page.locator("#opt-mergethr-error")).to_contain_text("seedthr")
    expect(page.locator("#form-errors")).to_contain_text("The job was refused")
    assert len(posts) == 1
    assert page.url.endswith("/") or page.url.endswith("#/")


def test_cancel_a_running_job_from_the_page(page: Page, stack: Stack, image: Path, tmp_path: Path) -> None:
    upload_by_drop(page, image)
    page.locator("#app-select").select_option("trivial")
    page.locator("#opt-seconds").fill("600")
    page.locator("#submit-job").click()
    expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#job-facts .state")).to_have_text("RUNNING", timeout=60_000)
    # From the live list: the row's own cancel button.
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator(f"#jobs-body tr[data-job-id='{job_id}']")
    expect(row).to_contain_text("RUNNING")
    row.get_by_role("button", name=f"Cancel job {job_id[:8]}").click()
    # The list follows the event stream to the final state, with no reload.
    expect(row.locator(".state")).to_have_text("CANCELED", timeout=60_000)
    expect(row.get_by_role("button")).to_have_count(0)
    assert api_json(stack, f"/api/v2/jobs/{job_id}")["state"] == "CANCELED"


@pytest.mark.parametrize(
    "cards",
    [
        {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "CDELT1": -0.001, "CDELT2": 0.001},
        {
            "CTYPE1": "RA---TAN",
            "CTYPE2": "DEC--TAN",
            "CD1_1": -2e-4,
            "CD1_2": 1e-4,
            "CD2_1": 1e-4,
            "CD2_2": 2e-4,
        },
        {"CTYPE1": "RA---ARC", "CTYPE2": "DEC--ARC", "CDELT1": -0.01, "CDELT2": 0.01, "CROTA2": 30.0},
    ],
    ids=["sin", "tan-cd", "arc-crota"],
)
def test_overlay_positions_match_astropy(page: Page, cards: dict[str, Any]) -> None:
    """The page's sky-to-pixel (the overlay's placement) agrees with astropy's WCS."""
    header = {"NAXIS": 2, "NAXIS1": 256, "NAXIS2": 256, "CRVAL1": 201.4, "CRVAL2": -43.0, "CRPIX1": 120.5}
    header |= {"CRPIX2": 130.0, **cards}
    wcs = WCS(header)
    pixels = np.array([[0.0, 0.0], [255.0, 0.0], [40.0, 200.0], [128.0, 128.0], [255.0, 255.0]])
    world = wcs.pixel_to_world_values(pixels[:, 0], pixels[:, 1])
    points = [[float(ra), float(dec)] for ra, dec in zip(*world, strict=True)]
    page.goto("/")
    got = page.evaluate(
        """async ([cards, points]) => {
            const { skyToPixel } = await import('/web/wcs.js');
            const sky = skyToPixel(cards);
            return points.map(([ra, dec]) => sky.toPixel(ra, dec));
        }""",
        [header, points],
    )
    assert np.allclose(np.array(got), pixels, atol=1e-6), got
