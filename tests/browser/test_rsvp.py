"""Answering a meeting invitation, and unsubscribing, in a real browser on a 360 px phone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from service.db import session_scope
from service.meetings import operations
from service.meetings.operations import MeetingDetails
from service.models import Contact, ContactStatus, Invitation, Rsvp
from tests.browser.conftest import UNNAMED_CONTROLS, assert_fits_a_phone, press_and_wait
from tests.mail import ReceivedMail

pytestmark = pytest.mark.browser

PHNOM_PENH = ZoneInfo("Asia/Phnom_Penh")
ENGLISH_MEMBER = "amara@riverbank.example"
KHMER_MEMBER = "bopha@memory.example"
TITLE_EN = "Monthly meeting"
TITLE_KM = "កិច្ចប្រជុំប្រចាំខែ"
PLACE = "Documentation centre, Phnom Penh"
EMAIL_ERROR = "Enter an email address such as name@example.org."


@dataclass
class Invitations:
    """The invitation emails the two members received."""

    english: ReceivedMail
    khmer: ReceivedMail


@pytest.fixture
def invitations(app, clock, deliver, smtp_server, make_member) -> Invitations:
    """Two members invited to a meeting 9 days ahead at 14:00, sent at 09:00 Phnom Penh time.

    The clock stays at 09:00 on the sending day, so the RSVP page is open for answers.
    """
    make_member(ENGLISH_MEMBER, name="Amara", language="en")
    make_member(KHMER_MEMBER, name="បុប្ផា", language="km", organisation="Memory Association")
    clock.set(datetime(2027, 1, 5, 9, 0, tzinfo=PHNOM_PENH))  # inside the 08:00-12:00 window
    with app.app_context(), session_scope(app) as db:
        operations.add_meeting(
            db,
            MeetingDetails(
                title_en=TITLE_EN,
                title_km=TITLE_KM,
                starts_at=datetime(2027, 1, 14, 14, 0, tzinfo=PHNOM_PENH),
                duration_minutes=120,
                location=PLACE,
                online_url="https://meet.example/wg",
                agenda_en="1. Reparations projects\n2. Outreach",
                agenda_km="១. គម្រោងសំណង\n២. ការផ្សព្វផ្សាយ",
            ),
            now=clock(),
        )
    deliver()
    return Invitations(
        english=smtp_server.single_message_to(ENGLISH_MEMBER),
        khmer=smtp_server.single_message_to(KHMER_MEMBER),
    )


def _invitation_link(mail: ReceivedMail, answer: str) -> str:
    """The invitation's own "answer with …" link, query and all, as the email gives it."""
    wanted = f"answer={answer}"
    links = [p for p in mail.links if p.startswith("/rsvp/") and wanted in p.split("?", 1)[-1]]
    assert len(links) == 1, f"expected one {wanted} link in the invitation, found {mail.links}"
    return links[0]


def _stored(db, email: str, column):  # type: ignore[no-untyped-def]
    """One stored value of the member with this address, read afresh from the database."""
    db.expire_all()
    query = select(column).where(Contact.email == email)
    if column.class_ is not Contact:
        query = query.join(Contact)
    return db.scalar(query)


def _your_answer(page: Page):  # type: ignore[no-untyped-def]
    return page.locator(".your-answer > strong")


def _open_more(page: Page) -> None:
    """Open the part with the note and the colleague (folded, so the button stays in view)."""
    page.get_by_text("Add a note, or send a colleague in your place (optional)").click()


def _send_answer(page: Page, expected_status: int) -> None:
    press_and_wait(page, "Send my answer", posts_to="/rsvp/", status=expected_status)


def test_member_answers_from_the_invitation_link_and_changes_the_answer(
    page: Page, live_server: str, invitations: Invitations, db
):
    link = _invitation_link(invitations.english, "maybe")
    page.goto(live_server + link)

    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE_EN)
    expect(page.get_by_text(PLACE)).to_be_visible()
    expect(page.get_by_label("Maybe", exact=True)).to_be_checked()  # preselected by the link
    expect(page.get_by_label("Yes, I will attend")).not_to_be_checked()
    expect(page.get_by_label("No, I cannot attend")).not_to_be_checked()
    # Opening the link records nothing, and the page says so.
    expect(page.locator(".pending")).to_contain_text("Not recorded yet")
    assert _stored(db, ENGLISH_MEMBER, Invitation.answer) is Rsvp.NONE

    _send_answer(page, 302)
    expect(page).to_have_url(re.compile(r"/rsvp/[^?]+\?saved=1$"))
    expect(page.get_by_role("status")).to_contain_text("Thank you, your answer is recorded: Maybe")
    expect(page.locator(".pending")).to_have_count(0)
    expect(page.get_by_label("Maybe", exact=True)).to_be_checked()
    assert _stored(db, ENGLISH_MEMBER, Invitation.answer) is Rsvp.MAYBE

    page.get_by_label("No, I cannot attend").check()
    _open_more(page)
    page.get_by_label("Note for the coordinator (optional)").fill("I am in Siem Reap that week.")
    _send_answer(page, 302)
    expect(page.get_by_role("status")).to_contain_text(
        "Thank you, your answer is recorded: No, I cannot attend"
    )
    expect(page.get_by_label("No, I cannot attend")).to_be_checked()
    expect(page.get_by_label("Note for the coordinator (optional)")).to_have_value(
        "I am in Siem Reap that week."
    )

    assert _stored(db, ENGLISH_MEMBER, Invitation.answer) is Rsvp.NO
    assert _stored(db, ENGLISH_MEMBER, Invitation.note) == "I am in Siem Reap that week."
    assert _stored(db, KHMER_MEMBER, Invitation.answer) is Rsvp.NONE  # only this member's answer


def test_khmer_member_sees_the_rsvp_page_in_khmer(
    page: Page, live_server: str, invitations: Invitations
):
    # The browser asks for English (en-US); the page follows the member's language instead.
    page.goto(live_server + invitations.khmer.link("/rsvp/"))

    expect(page.locator("html")).to_have_attribute("lang", "km")
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE_KM)
    expect(page.get_by_role("group", name=re.compile("តើលោកអ្នកនឹងចូលរួមដែរឬទេ"))).to_be_visible()
    expect(page.get_by_role("button")).to_have_text("ផ្ញើចម្លើយរបស់ខ្ញុំ")
    expect(page.get_by_text("Send my answer")).to_have_count(0)
    expect(page.get_by_text("Will you attend?")).to_have_count(0)


def test_rsvp_page_fits_a_phone_and_every_control_is_labelled(
    page: Page, live_server: str, invitations: Invitations
):
    page.goto(live_server + _invitation_link(invitations.english, "yes"))
    expect(page.get_by_role("button", name="Send my answer")).to_be_visible()
    _open_more(page)
    page.screenshot(path="/tmp/wg-rsvp-360.png", full_page=True)  # for people; not asserted

    assert_fits_a_phone(page)

    found = page.evaluate(UNNAMED_CONTROLS)
    assert found["problems"] == []
    assert found["groups"] == ["answer"]
    # 3 radios, the note, the substitute's name and email, the button
    assert found["count"] == 7

    # The same, as the browser's accessibility tree computes it.
    controls = page.locator("input:not([type=hidden]), select, textarea, button")
    expect(controls).to_have_count(7)
    for index in range(controls.count()):
        expect(controls.nth(index)).to_have_accessible_name(re.compile(r"\S"))
    answers = page.get_by_role("group", name=re.compile(r"^Will you attend\?")).get_by_role("radio")
    expect(answers).to_have_count(3)
    expect(page.get_by_role("group", name="Sending a colleague instead?")).to_be_visible()


def test_substitute_with_a_bad_email_shows_an_error_tied_to_the_field(
    page: Page, live_server: str, invitations: Invitations, db
):
    page.goto(live_server + invitations.english.link("/rsvp/"))
    page.get_by_label("Yes, I will attend").check()
    _open_more(page)
    page.get_by_label("Name of the colleague attending in your place (optional)").fill("Sokha")
    page.get_by_label("Their email address").fill("sokha@")
    _send_answer(page, 400)

    email = page.get_by_label("Their email address")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_value("sokha@")  # what was typed is kept
    expect(email).to_have_accessible_description(re.compile(re.escape(EMAIL_ERROR)))
    described_by = (email.get_attribute("aria-describedby") or "").split()
    messages = [page.locator(f"[id='{ident}']") for ident in described_by]
    shown = [m for m in messages if m.count() == 1 and EMAIL_ERROR in m.inner_text()]
    assert len(shown) == 1, f"no message with the error among {described_by}"
    expect(shown[0]).to_be_visible()
    # ... shown with the field it is about, and the only field in error.
    expect(page.locator(".field", has=email).locator(".field-error")).to_contain_text(EMAIL_ERROR)
    expect(page.locator(".field-error")).to_have_count(1)
    expect(page.get_by_role("alert")).to_contain_text(f"Their email address: {EMAIL_ERROR}")
    expect(page.get_by_role("status")).to_have_count(0)  # no "thank you"
    expect(_your_answer(page)).to_have_text("Not answered yet")

    assert _stored(db, ENGLISH_MEMBER, Invitation.answer) is Rsvp.NONE
    assert not _stored(db, ENGLISH_MEMBER, Invitation.substitute_name)
    assert not _stored(db, ENGLISH_MEMBER, Invitation.substitute_email)


def test_unsubscribe_page_needs_the_button_and_then_confirms(
    page: Page, live_server: str, invitations: Invitations, db
):
    page.goto(live_server + invitations.english.link("/unsubscribe/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your emails from the working group")
    expect(page.get_by_role("heading", level=2)).to_have_text("Stop these emails")
    button = page.get_by_role("button", name="Stop these emails")
    expect(button).to_be_visible()
    expect(page.get_by_text(ENGLISH_MEMBER)).to_be_visible()
    # Opening the page is not enough: a link checker or mail scanner must not unsubscribe.
    assert _stored(db, ENGLISH_MEMBER, Contact.status) is ContactStatus.ACTIVE

    with page.expect_response(
        lambda r: r.request.method == "POST" and "/unsubscribe/" in r.url
    ) as answer:
        button.click()
    assert answer.value.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "You will not receive these emails any more"
    )
    expect(page.get_by_text(f"{ENGLISH_MEMBER} is removed from")).to_be_visible()
    expect(page.get_by_role("button")).to_have_count(0)

    assert _stored(db, ENGLISH_MEMBER, Contact.status) is ContactStatus.UNSUBSCRIBED
    assert _stored(db, KHMER_MEMBER, Contact.status) is ContactStatus.ACTIVE


@pytest.fixture
def small_phone(browser) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """A 360 x 640 phone (the smallest common screen) asking for English."""
    context = browser.new_context(viewport={"width": 360, "height": 640}, locale="en-US")
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("language", ["en", "km"])
def test_one_tap_the_answer_from_the_link_is_chosen_and_its_button_is_in_the_first_screen(
    small_phone: Page, live_server: str, invitations: Invitations, db, language: str
):
    mail = invitations.english if language == "en" else invitations.khmer
    member = ENGLISH_MEMBER if language == "en" else KHMER_MEMBER
    small_phone.goto(live_server + _invitation_link(mail, "yes"))

    expect(small_phone.locator("html")).to_have_attribute("lang", language)
    expect(small_phone.locator("input[value=yes]")).to_be_checked()
    button = small_phone.locator("form button[type=submit]")
    box = button.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 640, f"below the fold: {box}"
    assert small_phone.evaluate("window.scrollY") == 0
    small_phone.screenshot(path=f"/tmp/wg-rsvp-360x640-{language}.png")  # for people
    assert_fits_a_phone_of(small_phone, 360)

    with small_phone.expect_response(lambda r: r.request.method == "POST") as answer:
        button.click()
    assert answer.value.status == 302
    recorded = "Yes, I will attend" if language == "en" else "បាទ/ចាស ខ្ញុំនឹងចូលរួម"
    expect(small_phone.get_by_role("status")).to_contain_text(recorded)
    assert _stored(db, member, Invitation.answer) is Rsvp.YES


def test_the_rsvp_page_offers_the_meeting_as_a_calendar_file(
    page: Page, live_server: str, invitations: Invitations
):
    page.goto(live_server + invitations.english.link("/rsvp/"))
    with page.expect_download() as download:
        page.get_by_role("link", name="Add to my calendar (.ics)").click()

    assert download.value.suggested_filename == "meeting.ics"
    assert b"BEGIN:VEVENT" in Path(download.value.path()).read_bytes()


def assert_fits_a_phone_of(page: Page, width: int) -> None:
    """Nothing scrolls sideways at `width`."""
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width, f"the page scrolls sideways: {scroll} > {width}"
