"""A member's calendar: the feed a webcal:// subscription reads, and one invitation as a file."""

from __future__ import annotations

import re
from datetime import datetime

import icalendar
import pytest

from service.db import session_scope
from service.meetings import operations
from service.models import Meeting
from tests.service.test_meetings import add_meeting, local

KHMER_MEMBER = "bopha@memory.example"


@pytest.fixture
def invited(app, clock, deliver, smtp_server, make_member):
    """A Khmer-reading member's invitation to a meeting on 14 January with no place."""
    make_member(KHMER_MEMBER, name="បុប្ផា", language="km", organisation="Memory Association")
    clock.set(local(2027, 1, 5, 9, 0))
    meeting_id = add_meeting(app, clock, local(2027, 1, 14, 14, 0), location="")
    deliver()
    mail = smtp_server.single_message_to(KHMER_MEMBER)
    smtp_server.clear()
    return meeting_id, mail


def feed_path(client, mail) -> str:
    """The member page's webcal:// link, as the path of its https:// twin."""
    page = client.get(mail.link("/member/")).get_data(as_text=True)
    webcal = re.search(r'href="webcal://wg\.test(/calendar/[^"]+\.ics)"', page).group(1)
    assert f"http://wg.test{webcal}" in page  # the address to paste, for Google Calendar
    return webcal


def events(client, path: str) -> list[icalendar.Event]:
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = icalendar.Calendar.from_ical(answer.data)
    assert calendar["METHOD"] == "PUBLISH"
    return list(calendar.walk("VEVENT"))


def test_the_feed_follows_a_reschedule_and_a_cancellation(app, client, clock, invited):
    meeting_id, mail = invited
    path = feed_path(client, mail)

    (before,) = events(client, path)
    assert before.decoded("DTSTART") == local(2027, 1, 14, 14, 0)
    assert str(before["LOCATION"]) == "https://meet.example/wg"  # no place: the link
    description = str(before["DESCRIPTION"])
    assert "https://meet.example/wg" in description
    assert "១. គម្រោងសំណង" in description  # the agenda in the member's language
    assert str(before["SUMMARY"]) == "កិច្ចប្រជុំប្រចាំខែ"
    assert str(before["STATUS"]) == "CONFIRMED"

    with app.app_context(), session_scope(app) as db:
        meeting = db.get(Meeting, meeting_id)
        operations.reschedule(db, meeting, now=clock(), starts_at=local(2027, 1, 15, 9, 30))
    (moved,) = events(client, path)
    assert moved["UID"] == before["UID"]
    assert moved["SEQUENCE"] == before["SEQUENCE"] + 1
    assert moved.decoded("DTSTART") == local(2027, 1, 15, 9, 30)

    with app.app_context(), session_scope(app) as db:
        operations.cancel(db, db.get(Meeting, meeting_id), now=clock(), reason="")
    (cancelled,) = events(client, path)
    assert cancelled["UID"] == before["UID"]
    assert cancelled["SEQUENCE"] == moved["SEQUENCE"] + 1
    assert str(cancelled["STATUS"]) == "CANCELLED"


def test_the_feed_holds_every_meeting_to_come_and_drops_old_ones(
    app, client, clock, db, invited
):
    _, mail = invited
    path = feed_path(client, mail)
    add_meeting(app, clock, local(2027, 2, 11, 14, 0))  # not invited yet: in the feed already

    assert [e.decoded("DTSTART").date().isoformat() for e in events(client, path)] == [
        "2027-01-14", "2027-02-11",
    ]  # fmt: skip
    clock.set(local(2027, 3, 1, 9, 0))
    assert [e.decoded("DTSTART").date().isoformat() for e in events(client, path)] == [
        "2027-02-11"
    ]


def test_someone_who_left_gets_an_empty_feed(app, client, db, invited):
    _, mail = invited
    path = feed_path(client, mail)
    link = mail.link("/member/")
    page = client.get(link).get_data(as_text=True)
    token = re.search(r'name="leave-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post(f"{link}/leave", data={"leave-csrf_token": token, "leave-who": "me"})

    assert events(client, path) == []


def test_the_feed_and_the_emailed_invitation_are_one_event_in_the_members_calendar(
    client, invited
):
    _, mail = invited
    emailed = next(
        icalendar.Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")[0]
        for part in mail.message.walk()
        if part.get_content_type() == "text/calendar"
    )

    (subscribed,) = events(client, feed_path(client, mail))

    assert subscribed["UID"] == emailed["UID"]


def test_an_unknown_feed_is_not_found(client):
    assert client.get("/calendar/AAAAAAAAAAAAAAAAAAAAAA.ics").status_code == 404


def test_the_rsvp_pages_calendar_file_is_the_invitations_event(client, invited):
    _, mail = invited
    rsvp = mail.link("/rsvp/")
    invitation_event = next(
        icalendar.Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")[0]
        for part in mail.message.walk()
        if part.get_content_type() == "text/calendar"
    )

    page = client.get(rsvp).get_data(as_text=True)
    assert f'href="{rsvp}/meeting.ics"' in page
    answer = client.get(f"{rsvp}/meeting.ics")
    (event,) = icalendar.Calendar.from_ical(answer.data).walk("VEVENT")

    assert answer.headers["Content-Disposition"] == 'attachment; filename="meeting.ics"'
    assert event["UID"] == invitation_event["UID"]
    assert event.decoded("DTSTART") == invitation_event.decoded("DTSTART")
    assert rsvp in str(event["DESCRIPTION"])


def test_the_welcome_email_gives_the_calendar_subscription(client, deliver, smtp_server, db):
    from tests.web import post_with_csrf, submit_join_form

    submit_join_form(client, representatives_0_name="")
    deliver()
    post_with_csrf(client, smtp_server.messages_to("amara@riverbank.example")[-1].link("/confirm/"))
    deliver()
    review = smtp_server.messages_to("coordinator@wg.test")[-1].link("/review/")
    post_with_csrf(client, review, decision="approve")
    deliver()

    welcome = smtp_server.messages_to("amara@riverbank.example")[-1]
    webcal = re.search(r"webcal://wg\.test(/calendar/\S+\.ics)", welcome.text).group(1)
    assert webcal in welcome.html
    assert client.get(webcal).status_code == 200


def test_a_feed_event_without_a_time_zone_is_refused():
    from emails.calendar import FeedEvent, publish_ics

    event = FeedEvent(
        uid="u@wg.test",
        sequence=0,
        summary="x",
        description="",
        starts_at=datetime(2027, 1, 14, 14, 0),  # naive: a "floating" time that moves with you
        ends_at=datetime(2027, 1, 14, 16, 0),
        timezone="Asia/Phnom_Penh",
        modified_at=local(2027, 1, 1, 0, 0),
    )
    with pytest.raises(ValueError, match="aware"):
        publish_ics([event], name="Working Group", zone="Asia/Phnom_Penh")
