"""Meetings from the console: plan, change (telling the invitees as chosen), cancel, the sheet."""

from __future__ import annotations

import csv
import io

import icalendar
from sqlalchemy import select

from service.models import AuditEvent, Invitation, Meeting, MeetingSeries, MeetingStatus, Rsvp
from tests.console.conftest import COORDINATOR, post
from tests.service.test_meetings import local

EDIT_FIELDS = {
    "title_en": "Monthly meeting",
    "title_km": "កិច្ចប្រជុំប្រចាំខែ",
    "agenda_en": "1. Reparations projects\n2. Outreach",
    "agenda_km": "១. គម្រោងសំណង\n២. ការផ្សព្វផ្សាយ",
    "location": "Documentation centre, Phnom Penh",
    "online_url": "https://meet.example/wg",
    "day": "2027-01-14",
    "time": "14:00",
    "tell": "notice",
}


def calendar_of(mail) -> icalendar.Event:  # type: ignore[no-untyped-def]
    for part in mail.message.walk():
        if part.get_content_type() == "text/calendar":
            return icalendar.Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")[0]
    raise AssertionError("no calendar part")


def test_editing_the_time_sends_one_calendar_update_with_a_higher_sequence_to_each_invitee(
    client, invited, deliver, smtp_server, db
):
    path = f"/console/meetings/{invited}/edit"

    answer = post(client, path, **{**EDIT_FIELDS, "time": "15:30"})
    deliver()
    deliver()

    assert answer.status_code == 303
    for address in ("amara@riverbank.example", "bopha@memory.example"):
        mail = smtp_server.single_message_to(address)
        event = calendar_of(mail)
        assert int(event["SEQUENCE"]) == 1
        assert event.decoded("DTSTART") == local(2027, 1, 14, 15, 30)
    assert db.get(Meeting, invited).sequence == 1
    rescheduled = db.scalars(select(AuditEvent).where(AuditEvent.action == "meeting.rescheduled"))
    assert rescheduled.one().actor == COORDINATOR


def test_a_corrected_agenda_sends_a_short_notice_or_nothing(
    client, invited, deliver, smtp_server, db
):
    path = f"/console/meetings/{invited}/edit"

    post(client, path, **{**EDIT_FIELDS, "agenda_en": "1. Reparations\n2. Minutes"})
    deliver()
    notices = [smtp_server.single_message_to(a) for a in ("amara@riverbank.example",)]
    post(client, path, **{**EDIT_FIELDS, "agenda_en": "1. Reparations", "tell": "nothing"})
    deliver()

    assert notices[0].subject.startswith("Corrected: Monthly meeting")
    assert "2. Minutes" in notices[0].text
    assert not [p for p in notices[0].message.walk() if p.get_content_type() == "text/calendar"]
    assert len(smtp_server.messages_to("amara@riverbank.example")) == 1  # nothing the 2nd time
    assert db.get(Meeting, invited).agenda_en == "1. Reparations"
    assert db.get(Meeting, invited).sequence == 0


def test_nothing_changed_is_said_and_nothing_sent(client, invited, deliver, smtp_server):
    answer = post(client, f"/console/meetings/{invited}/edit", **EDIT_FIELDS)
    deliver()

    assert answer.status_code == 400
    assert "Nothing was changed." in answer.get_data(as_text=True)
    assert smtp_server.messages == []


def test_cancelling_tells_everyone_with_the_reason_in_both_languages(
    client, invited, deliver, smtp_server, db
):
    answer = post(
        client,
        f"/console/meetings/{invited}/cancel",
        reason_en="The hall is closed.",
        reason_km="សាលបិទ។",
    )
    deliver()

    assert answer.status_code == 303
    assert db.get(Meeting, invited).status is MeetingStatus.CANCELLED
    mail = smtp_server.single_message_to("bopha@memory.example")
    assert calendar_of(mail)["STATUS"] == "CANCELLED" or "CANCEL" in mail.raw.decode()
    assert "សាលបិទ។" in mail.text


def test_the_attendance_sheet_lists_every_invitee_and_exports_without_formulas(client, invited, db):
    invitation = db.scalars(select(Invitation).order_by(Invitation.id)).first()
    invitation.answer, invitation.note = Rsvp.YES, '=HYPERLINK("http://x")'
    invitation.substitute_name = "Sokha"
    db.commit()

    page = client.get(f"/console/meetings/{invited}").get_data(as_text=True)
    exported = client.get(f"/console/meetings/{invited}/attendance.csv")

    assert "Amara" in page and "Bopha" in page and "Sokha" in page
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.get_data().decode("utf-8-sig"))))
    assert [row["name"] for row in rows] == ["Bopha", "Amara"]  # by organisation
    assert rows[1]["answer"] == "yes" and rows[1]["note"].startswith("'=")


def test_a_series_from_plain_choices_shows_its_dates_and_refuses_a_first_day_it_does_not_give(
    client, invited, db
):
    series = {
        **EDIT_FIELDS,
        "duration": "120",
        "repeat": "monthly_weekday",
        "ordinal": "2",
        "weekday": "TH",
        "day": "2027-02-10",  # a Wednesday
    }
    refused = post(client, "/console/meetings/new", **series, action="create")
    preview = post(
        client, "/console/meetings/new", **{**series, "day": "2027-02-11"}, action="preview"
    )
    created = post(
        client, "/console/meetings/new", **{**series, "day": "2027-02-11"}, action="create"
    )

    assert refused.status_code == 400
    assert "Thursday, February 11, 2027" in refused.get_data(as_text=True)
    assert "Thursday, March 11, 2027" in preview.get_data(as_text=True)
    assert created.status_code == 303
    (made,) = db.scalars(select(MeetingSeries)).all()
    assert made.rrule == "FREQ=MONTHLY;BYDAY=2TH"
    page = client.get("/console/meetings?year=2027").get_data(as_text=True)
    assert page.count("Monthly meeting") >= 2


def test_a_series_is_listed_changed_and_ended_from_the_console(client, invited, db):
    series = {
        **EDIT_FIELDS, "duration": "120", "repeat": "monthly_weekday", "ordinal": "2",
        "weekday": "TH", "day": "2027-02-11",
    }  # fmt: skip
    post(client, "/console/meetings/new", **series, action="create")
    (made,) = db.scalars(select(MeetingSeries)).all()
    path = f"/console/series/{made.id}"
    assert "Thursday, March 11, 2027" in client.get(path).get_data(as_text=True)

    changed = post(client, path, **{**EDIT_FIELDS, "title_en": "Working group meeting"})
    ended = post(
        client, f"{path}/end", path, last_day="2027-02-28", reason_en="We meet less often."
    )

    assert changed.status_code == ended.status_code == 303
    meetings = db.scalars(
        select(Meeting).where(Meeting.series_id == made.id).order_by(Meeting.starts_at)
    ).all()
    assert [m.title_en for m in meetings] == ["Working group meeting"] * len(meetings)
    assert [m.status for m in meetings[1:]] == [MeetingStatus.CANCELLED] * (len(meetings) - 1)
    assert meetings[0].status is MeetingStatus.SCHEDULED
    page = client.get(path).get_data(as_text=True)
    assert "Thursday, February 11, 2027" in page and "March 11, 2027" not in page
