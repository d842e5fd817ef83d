"""Monthly meetings: who gets which email on which day, in which language, exactly once."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest
from sqlalchemy import func, select

from scheduler import jobs
from service.cli import cli as wg
from service.db import session_scope
from service.meetings import operations
from service.meetings.operations import MeetingDetails
from service.models import (
    AuditEvent,
    Contact,
    ContactStatus,
    Invitation,
    Meeting,
    OutboundEmail,
    OutboxStatus,
    Rsvp,
)
from tests.web import csrf_token, post_with_csrf

PHNOM_PENH = ZoneInfo("Asia/Phnom_Penh")


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=PHNOM_PENH)


def details(starts_at: datetime, **changes) -> MeetingDetails:
    values = dict(
        title_en="Monthly meeting",
        title_km="កិច្ចប្រជុំប្រចាំខែ",
        starts_at=starts_at,
        duration_minutes=120,
        location="Documentation centre, Phnom Penh",
        online_url="https://meet.example/wg",
        agenda_en="1. Reparations projects\n2. Outreach",
        agenda_km="១. គម្រោងសំណង\n២. ការផ្សព្វផ្សាយ",
    )
    values.update(changes)
    return MeetingDetails(**values)


@pytest.fixture
def members(make_member):
    return {
        "amara": make_member("amara@riverbank.example", name="Amara", language="en"),
        "bopha": make_member(
            "bopha@memory.example", name="បុប្ផា", language="km", organisation="Memory Association"
        ),
        "chea": make_member(
            "chea@legal.example", name="Chea", language="en", organisation="Legal Aid Group"
        ),
    }


def add_series(app, clock, rule="FREQ=MONTHLY;BYDAY=2TH", first=None):
    with app.app_context(), session_scope(app) as db:
        series = operations.add_series(
            db, details(first or local(2027, 1, 14, 14, 0)), rule, until=None, now=clock()
        )
        return series.id


def add_meeting(app, clock, starts_at, **changes) -> int:
    with app.app_context(), session_scope(app) as db:
        return operations.add_meeting(db, details(starts_at, **changes), now=clock()).id


def received(smtp_server) -> list[tuple[str, str, str]]:
    """(recipient, kind of mail, language) of everything received, then forgets it."""
    kinds = []
    for mail in smtp_server.messages:
        subject = mail.subject
        kind = next(
            (
                k
                for k in ("Invitation", "Changed", "Please answer", "Reminder", "Cancelled")
                if subject.startswith(k)
            ),
            subject,
        )
        if mail["Content-Language"] == "km":
            kind = {
                "អញ្ជើញ": "Invitation",
                "ផ្លាស់ប្ដូរ": "Changed",
                "សូមឆ្លើយតប": "Please answer",
                "រំលឹក": "Reminder",
                "លុបចោល": "Cancelled",
            }.get(
                next(
                    (w for w in ("អញ្ជើញ", "ផ្លាស់ប្ដូរ", "សូមឆ្លើយតប", "រំលឹក", "លុបចោល") if w in subject),
                    "",
                ),
                subject,
            )
        kinds.append((mail.rcpt_tos[0], kind, mail["Content-Language"]))
    smtp_server.clear()
    return sorted(kinds)


def answer(client, mail, choice: str, **extra: str):
    link = mail.link("/rsvp/")
    assert client.get(f"{link}?answer={choice}").status_code == 200
    return post_with_csrf(client, link, answer=choice, **extra)


def test_a_month_of_meeting_mail_goes_to_the_right_people_on_the_right_days(
    app, client, clock, deliver, smtp_server, members, db
):
    clock.set(local(2026, 12, 20, 9, 0))
    add_series(app, clock)
    deliver()
    assert received(smtp_server) == []

    clock.set(local(2026, 12, 31, 7, 0))  # invitation day, before the morning window
    deliver()
    assert received(smtp_server) == []
    clock.set(local(2026, 12, 31, 9, 0))
    deliver()
    deliver()  # a second tick sends nothing new
    invitations = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    assert received(smtp_server) == [
        ("amara@riverbank.example", "Invitation", "en"),
        ("bopha@memory.example", "Invitation", "km"),
        ("chea@legal.example", "Invitation", "en"),
    ]
    assert "កិច្ចប្រជុំប្រចាំខែ" in invitations["bopha@memory.example"].subject
    assert "មករា" in invitations["bopha@memory.example"].text  # January, in Khmer
    assert answer(client, invitations["amara@riverbank.example"], "yes").status_code == 302

    clock.set(local(2027, 1, 7, 9, 0))  # first follow-up, 7 days before
    deliver()
    assert received(smtp_server) == [
        ("bopha@memory.example", "Please answer", "km"),
        ("chea@legal.example", "Please answer", "en"),
    ]
    assert answer(client, invitations["bopha@memory.example"], "no").status_code == 302

    clock.set(local(2027, 1, 12, 9, 0))  # second follow-up, 2 days before
    deliver()
    assert received(smtp_server) == [("chea@legal.example", "Please answer", "en")]

    clock.set(local(2027, 1, 13, 9, 0))  # reminder, 1 day before, to those coming
    deliver()
    assert received(smtp_server) == [("amara@riverbank.example", "Reminder", "en")]

    clock.set(local(2027, 1, 14, 15, 0))  # during the meeting
    deliver()
    assert received(smtp_server) == []

    clock.set(local(2027, 1, 28, 9, 0))  # invitation day of the February meeting
    deliver()
    assert received(smtp_server) == [
        ("amara@riverbank.example", "Invitation", "en"),
        ("bopha@memory.example", "Invitation", "km"),
        ("chea@legal.example", "Invitation", "en"),
    ]
    starts = db.scalars(select(Meeting.starts_at).order_by(Meeting.starts_at)).all()
    assert starts[:2] == [local(2027, 1, 14, 14, 0), local(2027, 2, 11, 14, 0)]


def calendar_of(mail) -> tuple[icalendar.Calendar, icalendar.Event]:
    parts = [p for p in mail.message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    calendar = icalendar.Calendar.from_ical(parts[0].get_payload(decode=True))
    return calendar, next(iter(calendar.walk("VEVENT")))


def test_invitation_carries_a_calendar_request_and_list_headers(
    app, clock, deliver, smtp_server, members
):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()

    mail = smtp_server.single_message_to("bopha@memory.example")
    calendar, event = calendar_of(mail)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]).startswith("meeting-")
    assert int(event["SEQUENCE"]) == 0
    assert event["DTSTART"].dt == local(2027, 1, 14, 14, 0)
    assert event["DTSTART"].params["TZID"] == "Asia/Phnom_Penh"
    assert str(event["ORGANIZER"]).lower() == "mailto:noreply@wg.test"
    attendees = event.get("ATTENDEE")
    assert not isinstance(attendees, list)
    assert str(attendees).lower() == "mailto:bopha@memory.example"
    assert attendees.params["RSVP"] == "TRUE"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.link("/unsubscribe/")
    assert {link.split("=")[-1] for link in mail.links if "?answer=" in link} == {
        "yes",
        "no",
        "maybe",
    }


def test_reschedule_sends_an_update_with_the_same_uid_and_keeps_answers(
    app, client, clock, deliver, smtp_server, members, db
):
    clock.set(local(2027, 1, 5, 9, 0))
    meeting_id = add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    first = smtp_server.single_message_to("amara@riverbank.example")
    answer(client, first, "yes")
    smtp_server.clear()

    with app.app_context(), session_scope(app) as session:
        operations.reschedule(
            session,
            session.get(Meeting, meeting_id),
            now=clock(),
            starts_at=local(2027, 1, 15, 9, 0),
            location="New office",
        )
    deliver()

    update = smtp_server.single_message_to("amara@riverbank.example")
    assert update.subject.startswith("Changed:")
    assert "THIS MEETING HAS CHANGED." in update.text
    assert "New office" in update.text
    assert "Your answer stays: Yes, I will attend." in update.text  # shown, and kept
    assert "Your answer stays: Yes, I will attend." in update.html
    _, old_event = calendar_of(first)
    _, new_event = calendar_of(update)
    assert new_event["UID"] == old_event["UID"]
    assert int(new_event["SEQUENCE"]) == 1
    assert new_event["DTSTART"].dt == local(2027, 1, 15, 9, 0)
    assert (
        db.scalar(
            select(Invitation.answer)
            .join(Contact)
            .where(Contact.email == "amara@riverbank.example")
        )
        is Rsvp.YES
    )


def test_cancellation_sends_cancel_and_stops_every_pending_mail(
    app, client, clock, deliver, smtp_server, members, db
):
    clock.set(local(2027, 1, 5, 9, 0))
    meeting_id = add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    invitation = smtp_server.single_message_to("amara@riverbank.example")
    answer(client, invitation, "yes")
    clock.set(local(2027, 1, 12, 9, 0))
    with app.app_context(), session_scope(app) as session:
        jobs.enqueue_due(app, clock())  # follow-ups are queued but not yet delivered...
        operations.cancel(
            session, session.get(Meeting, meeting_id), now=clock(), reason="The venue is closed."
        )
    smtp_server.clear()
    deliver()

    kinds = received(smtp_server)
    assert kinds == [
        ("amara@riverbank.example", "Cancelled", "en"),
        ("bopha@memory.example", "Cancelled", "km"),
        ("chea@legal.example", "Cancelled", "en"),
    ]
    clock.set(local(2027, 1, 13, 9, 0))
    deliver()
    assert received(smtp_server) == []  # no reminder for a cancelled meeting
    withdrawn = db.scalars(
        select(OutboundEmail.last_error).where(OutboundEmail.dedupe_key.like("followup-2:%"))
    ).all()
    assert withdrawn and all(e.startswith("withdrawn:") for e in withdrawn)


def test_cancel_part_is_a_calendar_cancel_with_a_raised_sequence(
    app, clock, deliver, smtp_server, members
):
    clock.set(local(2027, 1, 5, 9, 0))
    meeting_id = add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    _, invited = calendar_of(smtp_server.single_message_to("chea@legal.example"))
    smtp_server.clear()
    with app.app_context(), session_scope(app) as session:
        operations.cancel(session, session.get(Meeting, meeting_id), now=clock())
    deliver()

    calendar, event = calendar_of(smtp_server.single_message_to("chea@legal.example"))
    assert str(calendar["METHOD"]) == "CANCEL"
    assert event["UID"] == invited["UID"]
    assert int(event["SEQUENCE"]) == 1
    assert str(event["STATUS"]) == "CANCELLED"


def test_meeting_close_at_hand_is_invited_at_once_and_late_members_at_the_next_tick(
    app, clock, deliver, smtp_server, members, make_member
):
    clock.set(local(2027, 1, 10, 9, 0))
    add_meeting(app, clock, local(2027, 1, 12, 14, 0))  # closer than 14 days
    deliver()
    assert len(received(smtp_server)) == 3

    make_member("dara@newcomer.example", name="Dara", organisation="Newcomer")
    clock.advance(minutes=1)
    deliver()
    assert received(smtp_server) == [("dara@newcomer.example", "Invitation", "en")]


def test_nothing_is_sent_at_night(app, clock, deliver, smtp_server, members):
    clock.set(local(2027, 1, 5, 22, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    assert received(smtp_server) == []
    clock.set(local(2027, 1, 6, 8, 0))
    deliver()
    assert len(received(smtp_server)) == 3


def test_after_downtime_only_what_is_still_useful_is_sent(
    app, clock, deliver, smtp_server, members, db
):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    smtp_server.clear()

    clock.set(local(2027, 1, 12, 10, 0))  # down from Jan 5 to Jan 12: follow-up 1 was missed
    deliver()

    assert received(smtp_server) == [
        ("amara@riverbank.example", "Please answer", "en"),
        ("bopha@memory.example", "Please answer", "km"),
        ("chea@legal.example", "Please answer", "en"),
    ]
    skipped = db.scalars(
        select(OutboundEmail).where(OutboundEmail.dedupe_key.like("followup-1:%"))
    ).all()
    assert len(skipped) == 3
    assert {row.status for row in skipped} == {OutboxStatus.EXPIRED}


def test_mail_not_delivered_before_the_meeting_starts_is_expired(
    app, clock, deliver, smtp_server, members, db
):
    clock.set(local(2027, 1, 12, 9, 0))
    meeting_id = add_meeting(app, clock, local(2027, 1, 12, 11, 0))
    jobs.enqueue_due(app, clock())  # queued, but the sender is down until after the start
    clock.set(local(2027, 1, 12, 11, 30))
    report = deliver()

    assert report.delivery.expired == 3
    assert received(smtp_server) == []
    assert (
        db.scalar(
            select(func.count()).select_from(Invitation).where(Invitation.meeting_id == meeting_id)
        )
        == 3
    )


def test_two_ticks_at_once_queue_everything_once(app, clock, members, db, make_member):
    for n in range(20):
        make_member(f"member{n}@many.example", organisation=f"Org {n}")
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    errors = []

    def tick():
        try:
            jobs.enqueue_due(app, clock())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    keys = db.scalars(select(OutboundEmail.dedupe_key)).all()
    assert len(keys) == 23 and len(set(keys)) == 23
    assert db.scalar(select(func.count()).select_from(Invitation)) == 23


def test_substitute_named_on_the_rsvp_page_gets_the_reminder(
    app, client, clock, deliver, smtp_server, members, db
):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    invitation = smtp_server.single_message_to("bopha@memory.example")
    answered = answer(
        client,
        invitation,
        "yes",
        substitute_name="Sokha",
        substitute_email="sokha@memory.example",
        note="I am travelling",
    )
    assert answered.status_code == 302
    deliver()
    assert "បុប្ផា" in smtp_server.single_message_to("sokha@memory.example").text  # the details
    smtp_server.clear()

    clock.set(local(2027, 1, 13, 9, 0))
    deliver()

    reminder = smtp_server.single_message_to("sokha@memory.example")
    assert "បុប្ផា" in reminder.text  # named by the member, in the member's language
    assert smtp_server.single_message_to("bopha@memory.example")


def test_rsvp_page_preselects_records_and_changes_the_answer(
    app, client, clock, deliver, smtp_server, members, db
):
    clock.set(local(2027, 1, 5, 9, 0))
    meeting_id = add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    link = smtp_server.single_message_to("chea@legal.example").link("/rsvp/")

    page = client.get(f"{link}?answer=maybe").get_data(as_text=True)
    assert re.search(r'<input checked[^>]*value="maybe"', page)
    assert post_with_csrf(client, link, answer="maybe").status_code == 302
    assert post_with_csrf(client, link, answer="no").status_code == 302

    actions = db.scalars(select(AuditEvent.detail).where(AuditEvent.action == "rsvp.answered"))
    assert [d["answer"] for d in actions] == ["maybe", "no"]
    shown = app.test_cli_runner().invoke(wg, ["meetings", "show", str(meeting_id), "--json"])
    invitees = {i["email"]: i for i in json.loads(shown.output)["invitees"]}
    assert invitees["chea@legal.example"]["answer"] == "no"
    assert invitees["amara@riverbank.example"]["answer"] == "none"


def test_rsvp_after_the_start_is_read_only(app, client, clock, deliver, smtp_server, members, db):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    link = smtp_server.single_message_to("chea@legal.example").link("/rsvp/")
    token = csrf_token(client, link)
    clock.set(local(2027, 1, 14, 14, 30))

    page = client.get(link)
    assert page.status_code == 200
    assert "already taken place" in page.get_data(as_text=True)
    assert client.post(link, data={"csrf_token": token, "answer": "yes"}).status_code == 410
    assert (
        db.scalar(
            select(func.count()).select_from(Invitation).where(Invitation.answer != Rsvp.NONE)
        )
        == 0
    )


@pytest.mark.parametrize(
    ("query", "form", "status"),
    [
        ("?answer=perhaps", None, 400),
        ("", {"answer": "perhaps"}, 400),
        ("", {"answer": "yes", "substitute_name": "Sokha", "substitute_email": "sokha@"}, 400),
        (
            "",
            {
                "answer": "yes",
                "substitute_name": "X\r\nBcc: a@b.example",
                "substitute_email": "x@memory.example",
            },
            400,
        ),
        ("", {"answer": "yes", "csrf_token": ""}, 400),
    ],
)
def test_bad_rsvp_input_is_refused_and_changes_nothing(
    app, client, clock, deliver, smtp_server, members, db, query, form, status
):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    link = smtp_server.single_message_to("chea@legal.example").link("/rsvp/")

    if form is None:
        assert client.get(link + query).status_code == status
    else:
        data = {"csrf_token": csrf_token(client, link), **form}
        assert client.post(link, data=data).status_code == status
    assert (
        db.scalar(
            select(func.count()).select_from(Invitation).where(Invitation.answer != Rsvp.NONE)
        )
        == 0
    )


def test_forged_rsvp_token_is_a_plain_404(client, members):
    assert client.get("/rsvp/not-a-real-token?answer=yes").status_code == 404
    assert client.post("/rsvp/not-a-real-token", data={"answer": "yes"}).status_code == 404


def test_fetching_every_link_of_meeting_mail_changes_nothing(
    app, client, clock, deliver, smtp_server, members, db
):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    before = (
        db.scalars(select(Invitation.answer)).all(),
        db.scalars(select(Contact.status)).all(),
        db.scalar(select(func.count()).select_from(AuditEvent)),
    )
    for mail in smtp_server.messages:
        for link in mail.links:
            assert client.get(link).status_code < 500
            assert client.head(link).status_code < 500
    after = (
        db.scalars(select(Invitation.answer)).all(),
        db.scalars(select(Contact.status)).all(),
        db.scalar(select(func.count()).select_from(AuditEvent)),
    )
    assert after == before


def test_one_click_unsubscribe_stops_later_invitations(
    app, client, clock, deliver, smtp_server, members, db
):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    link = smtp_server.single_message_to("chea@legal.example").link("/unsubscribe/")

    answer = client.post(link, data={"List-Unsubscribe": "One-Click"})
    again = client.post(link, data={"List-Unsubscribe": "One-Click"})

    assert answer.status_code == again.status_code == 200
    assert (
        db.scalar(select(Contact.status).where(Contact.email == "chea@legal.example"))
        is ContactStatus.UNSUBSCRIBED
    )
    smtp_server.clear()
    add_meeting(app, clock, local(2027, 1, 16, 14, 0))
    clock.advance(minutes=1)
    deliver()
    assert "chea@legal.example" not in [m.rcpt_tos[0] for m in smtp_server.messages]
    assert Counter(m.rcpt_tos[0] for m in smtp_server.messages) == Counter(
        {"amara@riverbank.example": 1, "bopha@memory.example": 1}
    )


def test_a_same_day_reschedule_sends_one_message_not_a_change_and_a_reminder(
    app, client, clock, deliver, smtp_server, members, db
):
    clock.set(local(2027, 1, 5, 9, 0))
    meeting_id = add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    answer(client, smtp_server.single_message_to("amara@riverbank.example"), "yes")
    clock.set(local(2027, 1, 13, 9, 0))  # reminder day: the reminder goes out
    deliver()
    smtp_server.clear()

    clock.set(local(2027, 1, 13, 10, 0))  # an hour later the meeting moves by an hour
    with app.app_context(), session_scope(app) as session:
        meeting = session.get(Meeting, meeting_id)
        operations.reschedule(session, meeting, now=clock(), starts_at=local(2027, 1, 14, 15, 0))
    deliver()
    deliver()

    received = smtp_server.messages_to("amara@riverbank.example")
    assert [m.subject.split(":")[0] for m in received] == ["Changed"]


def test_reasons_for_a_change_and_a_cancellation_reach_each_member_in_their_language(
    app, clock, deliver, smtp_server, members
):
    clock.set(local(2027, 1, 5, 9, 0))
    meeting_id = add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    smtp_server.clear()

    result = app.test_cli_runner().invoke(
        wg,
        [
            "meetings", "reschedule", str(meeting_id), "--starts-at", "2027-01-15T14:00",
            "--reason", "The hall is booked.", "--reason-km", "សាលត្រូវបានកក់រួចហើយ។",
        ],
    )  # fmt: skip
    deliver()
    assert result.exit_code == 0, result.output
    changed = {m.rcpt_tos[0]: m.text for m in smtp_server.messages}
    assert "The hall is booked." in changed["amara@riverbank.example"]
    assert "សាលត្រូវបានកក់រួចហើយ។" in changed["bopha@memory.example"]
    assert "The hall is booked." not in changed["bopha@memory.example"]
    smtp_server.clear()

    result = app.test_cli_runner().invoke(
        wg,
        [
            "meetings", "cancel", str(meeting_id),
            "--reason", "No quorum.", "--reason-km", "មិនគ្រប់កូរ៉ុម។",
        ],
    )  # fmt: skip
    deliver()
    assert result.exit_code == 0, result.output
    cancelled = {m.rcpt_tos[0]: m.text for m in smtp_server.messages}
    assert "No quorum." in cancelled["chea@legal.example"]
    assert "មិនគ្រប់កូរ៉ុម។" in cancelled["bopha@memory.example"]


def test_an_event_without_a_place_has_the_online_link_as_location_and_in_its_description(
    app, clock, deliver, smtp_server, members
):
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0), location="")
    deliver()

    for address, agenda in (
        ("amara@riverbank.example", "1. Reparations projects"),
        ("bopha@memory.example", "១. គម្រោងសំណង"),
    ):
        _, event = calendar_of(smtp_server.single_message_to(address))
        assert str(event["LOCATION"]) == "https://meet.example/wg"
        description = str(event["DESCRIPTION"])
        assert "https://meet.example/wg" in description and agenda in description
