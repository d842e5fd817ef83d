"""Announcements from the console: both previews, a test to oneself, one send per form."""

from __future__ import annotations

import html
import re
import threading

from sqlalchemy import func, select

from service.models import Announcement, AuditEvent, OutboundEmail
from tests.console.conftest import COORDINATOR, page_csrf
from tests.service.test_decision_races import in_threads

DRAFT = {
    "subject_en": "The verdict will be read on 22 September",
    "body_en": "Dear members,\n\nThe **verdict** is read.\n\n<script>alert(1)</script>",
    "subject_km": "សាលក្រមនឹងត្រូវប្រកាសនៅថ្ងៃទី ២២ ខែកញ្ញា",
    "body_km": "សូមជម្រាបជូនថា **សាលក្រម** នឹងត្រូវប្រកាស។",
}
SUBMISSION = re.compile(r'name="submission" type="hidden" value="([^"]*)"')


def preview(console, **changes: str):  # type: ignore[no-untyped-def]
    form = {**DRAFT, **changes, "csrf_token": page_csrf(console, "/console/announcements")}
    form["submission"] = SUBMISSION.search(
        console.get("/console/announcements").get_data(as_text=True)
    ).group(1)
    return console.post("/console/announcements/preview", data=form), form


def test_the_preview_shows_both_versions_as_members_will_see_them(console, make_member):
    make_member("amara@riverbank.example")
    make_member("bopha@memory.example", language="km", organisation="Memory Association")

    answer, _form = preview(console)

    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "<strong>verdict</strong>" in page and "<strong>សាលក្រម</strong>" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Send to 2 members" in page


def test_a_test_goes_to_me_alone_in_every_language(console, make_member, deliver, smtp_server, db):
    make_member("amara@riverbank.example")
    _answer, form = preview(console)

    answer = console.post("/console/announcements/test", data=form)
    deliver()

    assert answer.status_code == 200
    subjects = sorted(m.subject for m in smtp_server.messages)
    assert subjects == sorted([DRAFT["subject_en"], DRAFT["subject_km"]])
    assert {tuple(m.rcpt_tos) for m in smtp_server.messages} == {(COORDINATOR,)}
    assert db.scalar(select(func.count()).select_from(Announcement)) == 0
    tested = db.scalars(select(AuditEvent).where(AuditEvent.action == "announcement.tested"))
    assert tested.one().actor == COORDINATOR


def test_an_announcement_submitted_twice_is_sent_once(
    console, make_member, deliver, smtp_server, db
):
    make_member("amara@riverbank.example")
    make_member("bopha@memory.example", language="km", organisation="Memory Association")
    _answer, form = preview(console)

    first = console.post("/console/announcements/send", data=form)
    again = console.post("/console/announcements/send", data=form)  # the browser's "resend"
    deliver()

    assert first.status_code == again.status_code == 303
    assert first.location == again.location
    assert len(smtp_server.single_message_to("amara@riverbank.example").subject) > 0
    assert smtp_server.single_message_to("bopha@memory.example").subject == DRAFT["subject_km"]
    assert db.scalar(select(func.count()).select_from(Announcement)) == 1
    queued = db.scalars(select(AuditEvent).where(AuditEvent.action == "announcement.queued"))
    assert queued.one().actor == COORDINATOR


def test_a_double_click_sends_one_announcement(app, console, make_member, deliver, db):
    make_member("amara@riverbank.example")
    _answer, form = preview(console)
    cookie = console.get_cookie("wg_console", path="/console").value
    session = console.get_cookie("session").value
    clicks = [app.test_client() for _ in range(2)]
    for browser in clicks:
        browser.set_cookie("wg_console", cookie, path="/console")
        browser.set_cookie("session", session)
    start = threading.Barrier(2, timeout=30)

    def click(browser):  # type: ignore[no-untyped-def]
        def send() -> int:
            start.wait()
            return browser.post("/console/announcements/send", data=form).status_code

        return send

    statuses = in_threads(*(click(browser) for browser in clicks))

    assert statuses == [303, 303]
    assert db.scalar(select(func.count()).select_from(Announcement)) == 1
    sends = select(func.count()).where(OutboundEmail.template == "announcement")
    assert db.scalar(sends) == 1


def test_past_announcements_show_their_delivery_counts(console, make_member, deliver):
    make_member("amara@riverbank.example")
    make_member("bopha@memory.example", organisation="Memory Association")
    _answer, form = preview(console)
    console.post("/console/announcements/send", data=form)
    deliver()

    page = html.unescape(console.get("/console/announcements").get_data(as_text=True))

    row = page[page.index(DRAFT["subject_en"]) :]
    numbers = re.findall(r'class="number">(\d+)</td>', row)[:4]
    assert numbers == ["2", "0", "0", "0"]  # sent, waiting, not sent, bounced
