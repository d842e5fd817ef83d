"""The console in Chromium, served by `wg web` (gunicorn, two workers) as in production, with
its mail delivered by `wg tick` to a recording SMTP server: signing in by the emailed link, by
keyboard alone, and every page at 360 px and 1280 px, in English and Khmer, checked by
axe-core."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.conftest import UNNAMED_CONTROLS
from tests.mail import SmtpRecorder, free_port
from tests.processes import base_environment, run_wg, wg_server
from tests.production.test_web_workers import Visitor
from tests.web import CSRF, join_form

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
COORDINATOR = "coordinator@console.example"
APPLICANT = "sothea@kampot.example"
APPLYING = "Kampot Memory Circle"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
AXE = Axe()
MEMBERS = """\
organization,name,email,language,role,phone
Riverbank Survivors Network,Amara Sok,amara@riverbank.example,en,Director,+855 12 345 678
សមាគមការចងចាំ,បុប្ផា ចាន់,bopha@memory.example,km,ប្រធាន,
Riverbank Survivors Network,Dara Chan,dara@riverbank.example,km,Officer,
Justice Voices Collective,Sophea Lim,sophea@justicevoices.example,en,Coordinator,
Justice Voices Collective,Vannak Sam,vannak@justicevoices.example,km,,
"""


@dataclass
class Installation:
    base: str
    env: dict[str, str]
    mail: SmtpRecorder
    folder: Path

    def wg(self, *args: str) -> str:
        result = run_wg(self.env, *args, cwd=self.folder)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout.decode()

    def deliver(self) -> None:
        self.wg("tick")


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    with running_installation(tmp_path_factory.mktemp("console")) as setup:
        yield setup


@contextmanager
def running_installation(folder: Path) -> Iterator[Installation]:
    """`wg web` on SQLite with members, a meeting and a join request waiting for a decision."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with SmtpRecorder() as mail:
        env = base_environment(
            WG_INSTANCE_PATH=str(folder / "instance"),
            WG_DATABASE_URL=f"sqlite:///{folder / 'wg.sqlite3'}",
            WG_SECRET_KEY="console-test-secret",
            WG_BASE_URL=base,
            WG_SMTP_HOST="127.0.0.1",
            WG_SMTP_PORT=str(mail.port),
            WG_MAIL_FROM="Working Group <noreply@console.example>",
            WG_COORDINATOR_EMAILS=COORDINATOR,
            WG_SEND_WINDOW="00:00-23:59",
            WG_DIGEST_TIME="23:59",
            PYTHONPATH=str(ROOT),  # the processes run this checkout's code, as the tests do
        )
        setup = Installation(base, env, mail, folder)
        setup.wg("db", "upgrade")
        (folder / "members.csv").write_text(MEMBERS, encoding="utf-8")
        setup.wg("members", "import", str(folder / "members.csv"))
        setup.wg(
            "meetings", "add", "--title", "Monthly meeting", "--title-km", "កិច្ចប្រជុំប្រចាំខែ",
            "--starts-at", "2099-01-14T14:00", "--invite-days", "36500",
            "--location", "Documentation centre, Phnom Penh", "--agenda", "1. Reparations",
        )  # fmt: skip
        setup.wg(
            "series", "add", "--title", "Monthly meeting", "--rrule", "FREQ=MONTHLY;BYDAY=2TH",
            "--starts-at", "2099-02-12T14:00", "--location", "Documentation centre",
        )  # fmt: skip
        with wg_server(
            env,
            "web", "--port", str(port), "--workers", "2",
            log=folder / "web.log",
            ready_url=f"{base}/healthz",
        ):  # fmt: skip
            _a_join_request_waiting(setup)
            yield setup


def _a_join_request_waiting(setup: Installation) -> None:
    applicant = Visitor(setup.base, "en")
    page, _headers = applicant.get("/join")
    form = join_form(
        organisation_name=APPLYING,
        name="Sothea Keo",
        email=APPLICANT,
        **{"representatives-0-name": "", "representatives-0-email": ""},
    )
    status, _ = applicant.post("/join", {**form, "csrf_token": CSRF.search(page).group(1)})
    assert status == 200
    setup.deliver()
    (confirmation,) = setup.mail.messages_to(APPLICANT)
    link = confirmation.link("/confirm/")
    page, _headers = applicant.get(link)
    status, _ = applicant.post(link, {"csrf_token": CSRF.search(page).group(1)})
    assert status == 200
    setup.deliver()
    setup.mail.clear()


def _sign_in_link(setup: Installation) -> str:
    setup.deliver()
    (mail,) = setup.mail.messages_to(COORDINATOR)
    setup.mail.clear()
    return setup.base + mail.link("/console/sign-in/")


def _tab_to(page: Page, name: str, *, most: int = 40) -> None:
    """Press Tab until the focused element's text or label is `name`."""
    for _ in range(most):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const el = document.activeElement; return (el.labels && el.labels[0] ?"
            " el.labels[0].textContent : el.textContent || el.value || '').trim(); }"
        )
        if focused.startswith(name):
            return
    raise AssertionError(f"{name!r} cannot be reached with the Tab key")


def _signed_in_page(browser, setup: Installation, viewport: dict[str, int]) -> Page:  # type: ignore[no-untyped-def]
    """A new browser context, signed in by keyboard alone through the emailed link."""
    context = browser.new_context(viewport=viewport, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{setup.base}/console")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    _tab_to(page, "Your email address")
    page.keyboard.type(COORDINATOR)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    page.goto(_sign_in_link(setup))
    _tab_to(page, "Sign in")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


def test_a_scanner_opening_the_link_signs_nobody_in_and_the_coordinator_then_does(
    browser, installation
):
    visitor = Visitor(installation.base, "en")
    page, _ = visitor.get("/console/sign-in")
    status, _ = visitor.post(
        "/console/sign-in", {"email": COORDINATOR, "csrf_token": CSRF.search(page).group(1)}
    )
    assert status == 200
    link = _sign_in_link(installation)
    scanner = Visitor(installation.base, "en")
    scanner.get(link.removeprefix(installation.base))
    scanner.get(link.removeprefix(installation.base))

    assert "Sign in to the coordinators" in scanner.get("/console")[0]  # still signed out
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(link)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        cookie = next(c for c in context.cookies() if c["name"] == "wg_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/console"
    finally:
        context.close()


# Every console page a coordinator reaches from the menu and from the overview.
PAGES = [
    ("/console", "Overview"),
    ("/console/requests", "Join requests"),
    ("REQUEST", "Join request"),
    ("/console/announcements", "Announcements"),
    ("/console/meetings", "Meetings"),
    ("/console/meetings/new", "Plan a meeting"),
    ("/console/meetings/1", "Monthly meeting"),
    ("/console/meetings/1/edit", "Change the meeting"),
    ("/console/meetings/1/cancel", "Cancel the meeting"),
    ("/console/series/1", "Monthly meeting"),
    ("/console/members", "Members"),
    ("/console/members?q=ចងចាំ", "Members"),
    ("/console/contacts/2", "បុប្ផា ចាន់"),
    ("/console/organisations/1", "Riverbank Survivors Network"),
    ("/console/activity", "Activity"),
    ("/console/attendance", "Attendance"),
    ("PREVIEW", "Preview the announcement"),
]


def _preview_an_announcement(page: Page, base: str, lang: str) -> None:
    """The announcement preview, reached as a coordinator reaches it: fill in, press Preview."""
    page.goto(f"{base}/console/announcements?lang={lang}")
    page.locator("#subject_en").fill("Verdict day")
    page.locator("#body_en").fill("The **verdict** is read on 22 September.\n\n- bring your ID")
    page.locator("#subject_km").fill("ថ្ងៃប្រកាសសាលក្រម")
    page.locator("#body_km").fill("សាលក្រមនឹងត្រូវប្រកាសនៅថ្ងៃទី ២២ ខែកញ្ញា។")
    with page.expect_navigation():
        page.locator("form button[type=submit]").last.click()


def _serious(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    results = AXE.run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(node["target"][0] for node in v["nodes"][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _wider_than_the_screen(page: Page) -> list[str]:
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')]
             .filter(el => !el.closest('.skip-link, .visually-hidden'))
             .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
             .map(el => el.tagName + '.' + el.className)"""
    )


def test_every_console_page_passes_axe_at_phone_and_desktop_width_in_both_languages(
    browser, installation
):
    page = _signed_in_page(browser, installation, PHONE)
    try:
        page.get_by_role("link", name="Join requests").first.click()
        page.get_by_role("link", name=APPLYING).first.click()
        request_path = page.url.removeprefix(installation.base)
        problems: list[str] = []
        for viewport in (PHONE, DESKTOP):
            page.set_viewport_size(viewport)
            for lang in ("en", "km"):
                for path, _title in PAGES:
                    where = f"{path} {lang} {viewport['width']}px"
                    if path == "PREVIEW":
                        _preview_an_announcement(page, installation.base, lang)
                        expect(page.locator("h1")).not_to_contain_text("Announcements")
                    else:
                        path = request_path if path == "REQUEST" else path
                        answer = page.goto(f"{installation.base}{path}?lang={lang}")
                        assert answer is not None and answer.status == 200, where
                    assert page.locator("html").get_attribute("lang") == lang
                    problems += [f"{where}: {p}" for p in _serious(page)]
                    unnamed = page.evaluate(UNNAMED_CONTROLS)["problems"]
                    problems += [f"{where}: {p}" for p in unnamed]
                    if viewport is PHONE:
                        problems += [
                            f"{where}: sticks out: {p}" for p in _wider_than_the_screen(page)
                        ]
        assert problems == [], "\n".join(problems)
    finally:
        page.context.close()


SIGNED_OUT_PAGES = ["/console/sign-in", "/console/sign-in/sent", "/console/sign-in/used-or-unknown"]


def test_the_sign_in_pages_pass_axe_at_phone_and_desktop_width_in_both_languages(
    browser, installation
):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    problems: list[str] = []
    try:
        for viewport in (PHONE, DESKTOP):
            page.set_viewport_size(viewport)
            for lang in ("en", "km"):
                for path in SIGNED_OUT_PAGES:
                    where = f"{path} {lang} {viewport['width']}px"
                    page.goto(f"{installation.base}{path}?lang={lang}")
                    assert page.locator("html").get_attribute("lang") == lang
                    problems += [f"{where}: {p}" for p in _serious(page)]
                    if viewport is PHONE:
                        problems += [f"{where}: {p}" for p in _wider_than_the_screen(page)]
    finally:
        context.close()
    assert problems == [], "\n".join(problems)


def test_a_coordinator_approves_a_request_by_keyboard_alone_in_khmer(browser, installation):
    page = _signed_in_page(browser, installation, PHONE)
    try:
        page.goto(f"{installation.base}/console/requests?lang=km")
        _tab_to(page, APPLYING)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_contain_text(APPLYING)
        _tab_to(page, "អនុម័ត")  # Approve
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_contain_text("បានអនុម័ត")  # Approved
        installation.deliver()
        subjects = [m.subject for m in installation.mail.messages_to(APPLICANT)]
        assert [s for s in subjects if s.startswith("Welcome")], subjects
        audit = installation.wg("audit")
        assert re.search(rf"join\.approved .*{re.escape(COORDINATOR)}", audit), textwrap.shorten(
            audit, 500
        )
    finally:
        page.context.close()
