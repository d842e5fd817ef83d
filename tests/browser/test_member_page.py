"""A member's own page in a real browser on a 360 x 640 phone, in English and in Khmer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from service.db import session_scope
from service.meetings import operations
from service.meetings.operations import MeetingDetails
from service.models import Contact, ContactStatus, Invitation, Rsvp
from tests.browser.conftest import UNNAMED_CONTROLS, assert_fits_a_phone, press_and_wait

pytestmark = pytest.mark.browser

PHNOM_PENH = ZoneInfo("Asia/Phnom_Penh")
MEMBERS = {"en": "amara@riverbank.example", "km": "bopha@memory.example"}
HEADINGS = {
    "en": ["Your meetings", "The meetings in your calendar", "Your details", "Add a colleague",
           "Leave the working group", "Stop these emails"],
    "km": ["កិច្ចប្រជុំរបស់លោកអ្នក", "កិច្ចប្រជុំនៅក្នុងប្រតិទិនរបស់លោកអ្នក",
           "ព័ត៌មានផ្ទាល់ខ្លួនរបស់លោកអ្នក", "បន្ថែមសហការី", "ចាកចេញពីក្រុមការងារ",
           "ឈប់ទទួលអ៊ីមែលទាំងនេះ"],
}  # fmt: skip


@pytest.fixture
def member_links(app, clock, deliver, smtp_server, make_member) -> dict[str, str]:
    """The member-page link in each member's invitation, by the member's language."""
    make_member(MEMBERS["en"], name="Amara", language="en")
    make_member(MEMBERS["km"], name="បុប្ផា", language="km", organisation="Memory Association")
    clock.set(datetime(2027, 1, 5, 9, 0, tzinfo=PHNOM_PENH))
    with app.app_context(), session_scope(app) as db:
        operations.add_meeting(
            db,
            MeetingDetails(
                title_en="Monthly meeting",
                title_km="កិច្ចប្រជុំប្រចាំខែ",
                starts_at=datetime(2027, 1, 14, 14, 0, tzinfo=PHNOM_PENH),
                location="Documentation centre, Phnom Penh",
                online_url="https://meet.example/wg",
            ),
            now=clock(),
        )
    deliver()
    return {lang: smtp_server.single_message_to(a).link("/member/") for lang, a in MEMBERS.items()}


@pytest.fixture
def phone(browser) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """A 360 x 640 phone whose browser asks for English, whoever the member is."""
    context = browser.new_context(viewport={"width": 360, "height": 640}, locale="en-US")
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def stored(db, email: str, column):  # type: ignore[no-untyped-def]
    db.expire_all()
    query = select(column).where(Contact.email == email)
    if column.class_ is not Contact:
        query = query.join(Contact)
    return db.scalar(query)


@pytest.mark.parametrize("lang", ["en", "km"])
def test_the_member_page_fits_a_phone_names_every_control_and_speaks_the_members_language(
    phone: Page, live_server: str, member_links, lang: str
):
    phone.goto(live_server + member_links[lang])

    expect(phone.locator("html")).to_have_attribute("lang", lang)
    expect(phone.get_by_role("heading", level=2)).to_have_text(HEADINGS[lang])
    assert_fits_a_phone(phone)
    found = phone.evaluate(UNNAMED_CONTROLS)
    assert found["problems"] == []
    # the answer to the meeting, the language, who leaves
    assert len(found["groups"]) == 3
    webcal = phone.locator("a[href^='webcal://']")
    expect(webcal).to_have_count(1)
    phone.screenshot(path=f"/tmp/wg-member-360x640-{lang}.png", full_page=True)  # for people


def test_a_member_changes_answer_and_details_and_the_page_says_what_was_saved(
    phone: Page, live_server: str, member_links, db
):
    phone.goto(live_server + member_links["en"])

    phone.get_by_label("No, I cannot attend").check()
    press_and_wait(phone, "Save my answer", posts_to="/meetings/", status=302)
    expect(phone.get_by_role("status")).to_have_text("Your answer is recorded.")
    expect(phone.get_by_label("No, I cannot attend")).to_be_checked()
    assert stored(db, MEMBERS["en"], Invitation.answer) is Rsvp.NO

    phone.get_by_label("Your role in the organisation").fill("Director")
    phone.get_by_label("ភាសាខ្មែរ (Khmer)").check()
    press_and_wait(phone, "Save my details", posts_to="/details", status=302)
    expect(phone.locator("html")).to_have_attribute("lang", "km")  # now in the chosen language
    expect(phone.get_by_role("status")).to_have_text(
        "ព័ត៌មានផ្ទាល់ខ្លួនរបស់លោកអ្នកត្រូវបានរក្សាទុកហើយ។"
    )
    assert stored(db, MEMBERS["en"], Contact.role) == "Director"


def test_leaving_needs_a_choice_and_then_says_so_plainly(
    phone: Page, live_server: str, member_links, db
):
    phone.goto(live_server + member_links["en"])

    press_and_wait(phone, "Leave the working group", posts_to="/leave", status=400)
    expect(phone.get_by_role("alert")).to_contain_text("Choose who leaves.")
    assert stored(db, MEMBERS["en"], Contact.status) is ContactStatus.ACTIVE

    phone.get_by_label("Only me: my colleagues stay members").check()
    press_and_wait(phone, "Leave the working group", posts_to="/leave", status=302)
    expect(phone.get_by_role("status").first).to_contain_text("You have left the working group")
    expect(phone.get_by_role("button")).to_have_count(0)
    expect(phone.get_by_role("link", name=re.compile("join form"))).to_be_visible()
    assert stored(db, MEMBERS["en"], Contact.status) is ContactStatus.INACTIVE
