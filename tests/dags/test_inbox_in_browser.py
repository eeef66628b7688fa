"""The privacy requests page as the staff use it: Debian's Chromium, driven by Playwright, logs in to a
real `airflow api-server` (started once for the module, the demo seeded as `make run` seeds it), finds
the page in the Airflow UI, and works a caseload through the page's own forms. What each action did is
read back through the core: the register, the outbox and the audit log, with the user's name.
Without /usr/bin/chromium the tests skip and say so, except in CI, where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from include.common.clock import utcnow
from include.common.reports import uk_date
from include.requests.caseload import caseload, timeline
from include.requests.complaints import complaints
from include.requests.deadlines import due_date
from include.requests.register import get_request
from include.vault.store import Vault
from tests.conftest import ci_requires_services
from tests.dags.test_inbox_api import CONTROLLER, PASSWORDS, REGION, LiveInbox, by_case, register, start_live_inbox

CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1280
RED = "rgb(198, 40, 40)"  # the page's overdue colour (static/inbox.css)


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (`apt-get install -y chromium`, or `make install`, installs it)"
        if ci_requires_services():
            pytest.fail(f"{message} (CI requires it)")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def live(chromium, tmp_path_factory) -> Iterator[LiveInbox]:
    inbox = start_live_inbox(tmp_path_factory.mktemp("inbox"))
    yield inbox
    inbox.airflow.stop()


@pytest.fixture(scope="module")
def page(live, chromium):
    """A browser page logged in to Airflow as the caseworker, through Airflow's own login form."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(f"{live.url}/privacy-requests/")
        assert page.get_by_role("alert").inner_text() == "Not authenticated"
        page.get_by_role("link", name="Log in to Airflow").click()
        page.get_by_label("Username").fill("caseworker")
        page.get_by_label("Password").fill(PASSWORDS["caseworker"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live.url}/privacy-requests/")
        yield page
        browser.close()


def vault_of(live: LiveInbox) -> Vault:
    return Vault.open(live.settings)


def staff_events(live: LiveInbox, request_id: str) -> list[str]:
    """The request's audited actions done by the logged-in caseworker."""
    with vault_of(live) as vault:
        return [event["action"] for event in timeline(vault, request_id) if event["actor"] == "staff:caseworker"]


def open_request(page, live: LiveInbox, case: str) -> None:
    page.goto(f"{live.url}/privacy-requests/")
    page.get_by_role("link", name=case, exact=True).click()
    page.get_by_role("heading", name=case).wait_for()


def test_the_page_lists_the_demo_with_days_left_and_the_overdue_in_red(page, live, tmp_path):
    with vault_of(live) as vault:
        register(vault, days_ago=3)  # beside the demo's, overdue since November
        lines = caseload(vault, today=utcnow().date(), open_only=True)
    assert {line.overdue for line in lines} == {True, False}
    page.goto(f"{live.url}/privacy-requests/")
    for line in lines:
        row = page.locator(f"tr[data-case='{line.case_reference}']")
        days = row.locator("td.days").inner_text()
        colour = row.locator("td.days").evaluate("cell => getComputedStyle(cell).color")
        if line.overdue:
            assert days == f"{-line.days_left} days overdue" and colour == RED, line.case_reference
        else:
            assert days.endswith("days") and colour != RED, line.case_reference
    page.screenshot(path=str(tmp_path / "caseload.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


def test_the_page_is_in_the_airflow_ui(page, live):
    page.goto(f"{live.url}/plugin/privacy-requests")
    frame = page.frame_locator("iframe")
    frame.get_by_role("heading", name="Privacy requests").wait_for()
    assert frame.locator("tr[data-case]").count() > 0


def test_pausing_then_resuming_moves_the_due_date_by_the_paused_days(page, live, tmp_path):
    with vault_of(live) as vault:
        case = register(vault, days_ago=10)
        line = by_case(vault, case)
    today = utcnow().date()
    open_request(page, live, case)
    pause = page.locator("form[action$='/pause']")
    pause.get_by_label("Waiting for").select_option("clarification")
    pause.get_by_label("Paused from").fill((today - timedelta(days=4)).isoformat())
    pause.get_by_role("button", name="Pause").click()
    assert page.locator("dd.status").inner_text() == "paused (clarification)"
    resume = page.locator("form[action$='/resume']")
    resume.get_by_label("Resumed on").fill(today.isoformat())
    resume.get_by_role("button", name="Resume").click()
    page.get_by_role("status").wait_for()
    with vault_of(live) as vault:
        request = get_request(vault, line.request_id)
    # The paused days move the month's end on, and it then falls on a working day.
    moved = due_date(request.clock_start, REGION, paused_days=4)
    assert request.due_on == moved > line.due_on and request.paused_days == 4
    assert page.locator("dd.due").inner_text() == uk_date(moved)
    assert staff_events(live, line.request_id) == ["request.paused", "request.resumed"]
    page.screenshot(path=str(tmp_path / "request.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


def extend_on_the_page(page, live: LiveInbox, case: str) -> None:
    open_request(page, live, case)
    extend = page.locator("form[action$='/extend']")
    extend.get_by_label("Further months").select_option("2")
    extend.get_by_label("The person was told on").fill(utcnow().date().isoformat())
    extend.get_by_role("button", name="Extend").click()


def test_an_extension_is_refused_after_the_first_month_with_the_message_and_accepted_within(page, live):
    with vault_of(live) as vault:
        late = next(line for line in caseload(vault, today=utcnow().date(), open_only=True) if line.overdue)
        within = register(vault, days_ago=5)
        within_id = by_case(vault, within).request_id
    extend_on_the_page(page, live, late.case_reference)
    assert "comes after the first deadline" in page.get_by_role("alert").inner_text()
    assert "Traceback" not in page.content() and page.locator("dd.due").inner_text() == uk_date(late.due_on)
    extend_on_the_page(page, live, within)
    page.get_by_role("status").wait_for()
    with vault_of(live) as vault:
        assert get_request(vault, late.request_id).extension_months == 0
        extended = get_request(vault, within_id)
    assert extended.extension_months == 2
    assert page.locator("dd.due").inner_text() == uk_date(due_date(extended.clock_start, REGION, extension_months=2))
    assert (live.directory / "outbox" / CONTROLLER / f"extension-{within}.html").exists()
    assert staff_events(live, late.request_id) == []
    assert staff_events(live, within_id) == ["request.extended", "request.letter"]


def test_a_refusal_leaves_a_letter_naming_the_ico_in_the_outbox(page, live):
    with vault_of(live) as vault:
        case = register(vault, days_ago=3)
        request_id = by_case(vault, case).request_id
    open_request(page, live, case)
    refuse = page.locator("form[action$='/refuse']")
    refuse.get_by_label("Because").select_option("manifestly_unfounded")
    refuse.get_by_role("button", name="Refuse").click()
    page.get_by_role("status").wait_for()
    assert page.locator("dd.status").inner_text() == "refused"
    letter = live.directory / "outbox" / CONTROLLER / f"refusal-{case}.html"
    assert "(ICO)" in letter.read_text() and "manifestly unfounded" in letter.read_text()
    assert page.get_by_role("link", name=f"{CONTROLLER}/refusal-{case}.html").count() == 1
    assert staff_events(live, request_id) == ["request.refused", "request.letter"]


def test_a_complaint_is_registered_on_its_request_and_acknowledged(page, live):
    with vault_of(live) as vault:
        case = register(vault, days_ago=20)
        request_id = by_case(vault, case).request_id
    today = utcnow().date()
    open_request(page, live, case)
    lodged = page.locator("form[action$='/complaint']")
    lodged.get_by_label("Received on").fill((today - timedelta(days=2)).isoformat())
    lodged.get_by_role("button", name="Register").click()
    page.get_by_role("status").wait_for()
    with vault_of(live) as vault:
        [complaint] = complaints(vault, today=today, request_id=request_id)
    listed = page.inner_text("section.complaints")
    assert f"{complaint.reference}, received {uk_date(today - timedelta(days=2))}" in listed
    page.get_by_role("link", name="Acknowledge or close them on the complaints page").click()
    row = page.locator(f"tr[data-complaint='{complaint.reference}']")
    row.get_by_role("button", name="Acknowledge").click()
    page.get_by_role("status").wait_for()
    assert f"acknowledged {uk_date(today)}" in page.locator(f"tr[data-complaint='{complaint.reference}']").inner_text()
    assert staff_events(live, request_id) == ["complaint.received", "complaint.acknowledged"]


def test_the_dashboard_draws_a_picture_per_figure(page, live, tmp_path):
    page.goto(f"{live.url}/privacy-requests/dashboard")
    with vault_of(live) as vault:
        controllers = vault.controller_ids()
    assert page.locator("section.controller").count() == len(controllers)
    assert page.locator("section.controller svg.chart").count() == 3 * len(controllers)
    assert page.locator("svg.chart .bar.overdue").count() > 0
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
