"""Every page reached by a link in an email speaks its recipient's language, whatever the
browser asks for, and the language switch still works (360 x 640 phone, both languages)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from service.db import session_scope
from service.meetings import operations
from service.meetings.operations import MeetingDetails
from tests.browser.conftest import assert_fits_a_phone, press_and_wait
from tests.web import submit_join_form

pytestmark = pytest.mark.browser

PHNOM_PENH = ZoneInfo("Asia/Phnom_Penh")
OTHER = {"en": "km", "km": "en"}
BROWSER_LOCALE = {"en": "km-KH", "km": "en-US"}  # the browser asks for the other language
SWITCH = {"en": "English", "km": "ភាសាខ្មែរ"}
CONFIRM_BUTTON = {"en": "Confirm my email address", "km": "បញ្ជាក់អាសយដ្ឋានអ៊ីមែលរបស់ខ្ញុំ"}


@pytest.fixture
def links(app, client, clock, deliver, smtp_server, make_member, request) -> dict[str, str]:
    """The links a reader of `lang` received: a join confirmation, and a member's links."""
    lang = request.node.callspec.params["lang"]
    clock.set(datetime(2027, 1, 5, 9, 0, tzinfo=PHNOM_PENH))
    submit_join_form(client, lang=lang, language=lang, email="new@applicant.example")
    make_member("member@riverbank.example", name="Member", language=lang)
    with app.app_context(), session_scope(app) as db:
        operations.add_meeting(
            db,
            MeetingDetails(
                title_en="Monthly meeting",
                title_km="កិច្ចប្រជុំប្រចាំខែ",
                starts_at=datetime(2027, 1, 14, 14, 0, tzinfo=PHNOM_PENH),
                location="Documentation centre, Phnom Penh",
            ),
            now=clock(),
        )
    deliver()
    invitation = smtp_server.single_message_to("member@riverbank.example")
    return {
        "confirm": smtp_server.single_message_to("new@applicant.example").link("/confirm/"),
        "member": invitation.link("/member/"),
        "rsvp": invitation.link("/rsvp/"),
        "unsubscribe": invitation.link("/unsubscribe/"),
    }


@pytest.fixture
def phone(browser, request) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    lang = request.node.callspec.params["lang"]
    context = browser.new_context(
        viewport={"width": 360, "height": 640}, locale=BROWSER_LOCALE[lang]
    )
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["en", "km"])
def test_token_pages_speak_the_recipients_language_and_switch(
    phone: Page, live_server: str, links: dict[str, str], lang: str
):
    for name in ("confirm", "member", "rsvp", "unsubscribe"):
        phone.goto(live_server + links[name])
        expect(phone.locator("html"), name).to_have_attribute("lang", lang)
        assert_fits_a_phone(phone)

        phone.get_by_role("link", name=SWITCH[OTHER[lang]]).click()
        expect(phone.locator("html"), name).to_have_attribute("lang", OTHER[lang])
        assert links[name] in phone.url  # the same page, in the other language


@pytest.mark.parametrize("lang", ["en", "km"])
def test_the_page_after_confirming_stays_in_the_applicants_language(
    phone: Page, live_server: str, links: dict[str, str], lang: str
):
    phone.goto(live_server + links["confirm"])

    press_and_wait(phone, CONFIRM_BUTTON[lang], posts_to="/confirm/", status=302)

    expect(phone.locator("html")).to_have_attribute("lang", lang)
    assert "/confirmed" in phone.url
