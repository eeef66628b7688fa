"""The access report and the confirmation for the person as a browser shows them: Debian's Chromium,
driven by Playwright, renders each page and takes a screenshot (kept under the test's tmp_path); the
page's rendered text (what the screenshot shows, folded tables opened) holds the same facts the
HTML does, and nothing runs wider than the window. Without /usr/bin/chromium the tests skip and say
so, except in CI, where they fail (`make install` installs it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from include.demo.shop import SHOP_CONTROLLER, shop_truth
from include.requests.package import FOLDED_AFTER
from include.requests.pipeline import RequestSettings, fulfil
from include.requests.register import get_request
from include.requests.rights import person_confirmation_path, register_rights_request
from tests.conftest import ci_requires_services
from tests.helpers import client_in_both
from tests.unit.test_access_report import AT, RECEIVED, access_package, expected_facts, others_values, squeezed

CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1280


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def page():
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (`apt-get install -y chromium`, or `make install`, installs it)"
        if ci_requires_services():
            pytest.fail(f"{message} (CI requires it)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser.new_page(viewport={"width": WIDTH, "height": 900})
        browser.close()


def rendered(page, path: Path, screenshot: Path) -> str:
    """The page's text as rendered, with every folded table opened; a full-page screenshot of it."""
    page.goto(path.as_uri())
    for summary in page.locator("summary").all():
        summary.click()
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 20_000  # a page with its tables, not a blank one
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH  # nothing wider than the window
    return page.inner_text("body")


def test_the_access_report_renders_in_a_browser_with_every_fact(stores, tmp_path, page):
    email = client_in_both()
    truth = shop_truth(email)
    assert truth is not None
    request_id, files = access_package(stores, email, tmp_path)
    report = tmp_path / "report.html"
    report.write_bytes(files["report.html"])
    page.goto(report.as_uri())
    long = [t for t in json.loads(files["manifest.json"])["tables"] if t["records"] > FOLDED_AFTER]
    assert page.locator("details").count() == len(long) and not page.locator("details[open]").count()
    text = squeezed(rendered(page, report, tmp_path / "report.png"))
    case = get_request(stores.vault, request_id).case_reference
    assert case and squeezed(case) in text
    for kind, values in expected_facts(stores, files).items():
        assert not [value for value in values if squeezed(value) not in text], kind
    assert "Art.20" in text and "dataportability" in text
    [customer] = truth.rows["customers"]
    assert not [value for value in (email, customer["customer_no"], *truth.ips) if squeezed(value) not in text]
    assert not [other for other in others_values(email) if squeezed(other) in text]


def test_the_confirmation_for_the_person_renders_in_a_browser(stores, tmp_path, page):
    email = client_in_both()
    request_id = register_rights_request(stores.vault, controller_id=SHOP_CONTROLLER, kind="erase",
                                         received_on=RECEIVED, identities={"email": [email]}, actor="test", at=AT)
    settings = RequestSettings(work_dir=tmp_path / "work", outbox_dir=tmp_path / "outbox")
    done = fulfil(stores.vault, lambda _: stores, request_id, settings, on=RECEIVED, actor="test", at=AT)
    summary = json.loads(Path(done["confirmation"]).with_suffix(".json").read_text())
    text = rendered(page, person_confirmation_path(Path(done["confirmation"])), tmp_path / "confirmation.png")
    case = get_request(stores.vault, request_id).case_reference
    assert case and case in text and "privacy@fenland-cycles.example" in text
    kept = [k for s in summary["stores"] for k in s["kept"]]
    assert kept and all(k["label"] in text for k in kept)
    assert re.search(r"through \d{1,2} March 20\d\d", text) and "24 November 2026" in text
    assert email not in text
