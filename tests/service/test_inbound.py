"""Mail that comes back: answers by calendar or reply, bounces, auto-replies, unsubscribes."""

from __future__ import annotations

import os
import subprocess
import sys
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import icalendar
import pytest
from sqlalchemy import func, select

from service.db import session_scope
from service.inbound.operations import process_message
from service.meetings import operations
from service.models import (
    AnswerChannel,
    AuditEvent,
    Contact,
    ContactStatus,
    InboundMessage,
    InboundOutcome,
    Invitation,
    Meeting,
    Rsvp,
    Suppression,
)
from tests.service.test_meetings import add_meeting, local

SAMPLES = Path(__file__).resolve().parents[1] / "emails" / "inbound_samples"
WG = str(Path(sys.executable).parent / "wg")


def process(app, clock, raw: bytes):
    with app.app_context(), session_scope(app) as db:
        return process_message(db, raw, now=clock())


@pytest.fixture
def invited(app, clock, deliver, smtp_server, make_member):
    """Two members invited to a meeting on 14 January; returns their invitation mails."""
    make_member("amara@riverbank.example", name="Amara", language="en")
    make_member("bopha@memory.example", name="Bopha", language="km", organisation="Memory")
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    mails = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    smtp_server.clear()
    return mails


def answer_of(db, address: str) -> tuple[Rsvp, AnswerChannel | None]:
    db.expire_all()
    invitation = db.scalars(select(Invitation).join(Contact).where(Contact.email == address)).one()
    return invitation.answer, invitation.answered_via


def calendar_reply(
    invitation_mail,
    partstat: str,
    *,
    attendee: str | None = None,
    sequence: int | None = None,
    robot: bool = False,
) -> bytes:
    """A REPLY as a calendar client sends it, built from the invitation's own event."""
    part = next(
        p for p in invitation_mail.message.walk() if p.get_content_type() == "text/calendar"
    )
    event = next(iter(icalendar.Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")))
    address = attendee or invitation_mail.rcpt_tos[0]
    reply = icalendar.Calendar()
    reply.add("prodid", "-//Test Calendar//EN")
    reply.add("version", "2.0")
    reply.add("method", "REPLY")
    answer = icalendar.Event()
    answer.add("uid", str(event["UID"]))
    answer.add("sequence", int(event["SEQUENCE"]) if sequence is None else sequence)
    answer.add("dtstamp", event["DTSTAMP"].dt)
    answer.add("dtstart", event["DTSTART"].dt)
    attendee_prop = icalendar.vCalAddress(f"mailto:{address}")
    attendee_prop.params["PARTSTAT"] = partstat
    answer.add("attendee", attendee_prop)
    reply.add_component(answer)
    message = EmailMessage()
    message["From"] = "calendar-notification@google.com" if robot else address
    message["To"] = "noreply@wg.test"
    message["Subject"] = f"{partstat.title()}: Monthly meeting"
    message["Message-ID"] = make_msgid(domain="calendar.example")
    if robot:
        message["Auto-Submitted"] = "auto-generated"
    message.set_content(f"{address} has {partstat.lower()} this invitation.")
    message.add_alternative(
        reply.to_ical(), maintype="text", subtype="calendar", params={"method": "REPLY"}
    )
    return message.as_bytes()


def plain_reply(invitation_mail, body: str, *, sender: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender or invitation_mail.rcpt_tos[0]
    message["To"] = "noreply@wg.test"
    message["Subject"] = "Re: " + invitation_mail.subject
    message["Message-ID"] = make_msgid(domain="riverbank.example")
    message["In-Reply-To"] = invitation_mail["Message-ID"]
    message["References"] = invitation_mail["Message-ID"]
    quoted = "\n".join("> " + line for line in invitation_mail.text.splitlines())
    message.set_content(f"{body}\n\nOn Tue, 5 Jan 2027, Working Group wrote:\n{quoted}\n")
    return message.as_bytes()


@pytest.mark.parametrize(
    ("partstat", "expected"),
    [
        ("ACCEPTED", Rsvp.YES),
        ("DECLINED", Rsvp.NO),
        ("TENTATIVE", Rsvp.MAYBE),
    ],
)
def test_calendar_answer_is_recorded_like_a_click(app, clock, db, invited, partstat, expected):
    outcome = process(app, clock, calendar_reply(invited["amara@riverbank.example"], partstat))

    assert outcome.outcome is InboundOutcome.PROCESSED
    assert answer_of(db, "amara@riverbank.example") == (expected, AnswerChannel.CALENDAR)


def test_calendar_answer_from_a_calendar_robot_is_still_taken(app, clock, db, invited):
    raw = calendar_reply(invited["amara@riverbank.example"], "ACCEPTED", robot=True)

    assert process(app, clock, raw).outcome is InboundOutcome.PROCESSED
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.YES, AnswerChannel.CALENDAR)


def test_calendar_answer_for_an_older_version_is_ignored(app, clock, db, invited):
    with app.app_context(), session_scope(app) as session:
        meeting = session.scalars(select(Meeting)).one()
        operations.reschedule(session, meeting, now=clock(), location="New office")
    raw = calendar_reply(invited["amara@riverbank.example"], "DECLINED", sequence=0)

    assert process(app, clock, raw).outcome is InboundOutcome.IGNORED
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)


def test_calendar_answer_for_someone_not_invited_is_not_trusted(app, clock, db, invited):
    raw = calendar_reply(
        invited["amara@riverbank.example"], "ACCEPTED", attendee="stranger@elsewhere.example"
    )

    assert process(app, clock, raw).outcome is InboundOutcome.ATTENTION
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Yes, I will attend.", Rsvp.YES),
        ("Sorry, I cannot make it this month.", Rsvp.NO),
        ("ចាស ខ្ញុំនឹងចូលរួម", Rsvp.YES),
        ("សូមអភ័យទោស ខ្ញុំមិនអាចចូលរួមបានទេ", Rsvp.NO),
        ("ប្រហែលជាខ្ញុំអាចមកបាន", Rsvp.MAYBE),
    ],
)
def test_plain_reply_answer_is_recorded_with_its_text(app, clock, db, invited, body, expected):
    outcome = process(app, clock, plain_reply(invited["amara@riverbank.example"], body))

    assert outcome.outcome is InboundOutcome.PROCESSED
    assert answer_of(db, "amara@riverbank.example") == (expected, AnswerChannel.EMAIL)
    audit = db.scalars(select(AuditEvent).where(AuditEvent.action == "rsvp.answered")).one()
    assert audit.detail["text"].startswith(body)


def test_unclear_reply_waits_for_a_person(app, clock, db, invited):
    raw = plain_reply(invited["amara@riverbank.example"], "Thanks, I will check my calendar.")

    assert process(app, clock, raw).outcome is InboundOutcome.ATTENTION
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)
    record = db.scalars(select(InboundMessage)).one()
    assert "check my calendar" in record.excerpt


def test_reply_from_another_address_is_not_taken_as_the_members_answer(app, clock, db, invited):
    raw = plain_reply(invited["amara@riverbank.example"], "Yes", sender="boss@riverbank.example")

    assert process(app, clock, raw).outcome is InboundOutcome.ATTENTION
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)


def test_answer_by_email_stops_the_follow_ups(app, clock, db, invited, deliver, smtp_server):
    process(app, clock, plain_reply(invited["amara@riverbank.example"], "Yes, I will attend."))
    clock.set(local(2027, 1, 7, 9, 0))
    deliver()

    assert [m.rcpt_tos[0] for m in smtp_server.messages] == ["bopha@memory.example"]


def test_a_message_is_processed_once(app, clock, db, invited):
    raw = plain_reply(invited["amara@riverbank.example"], "Yes")
    first = process(app, clock, raw)
    process(app, clock, plain_reply(invited["amara@riverbank.example"], "No"))  # changed mind
    again = process(app, clock, raw)

    assert first.outcome is InboundOutcome.PROCESSED and again.outcome is None
    assert answer_of(db, "amara@riverbank.example")[0] is Rsvp.NO
    assert db.scalar(select(func.count()).select_from(InboundMessage)) == 2


def test_hard_bounce_suppresses_the_address(app, clock, db, make_member):
    make_member("dara.sok@riverbank.example", name="Dara")
    raw = (SAMPLES / "postfix_bounce.eml").read_bytes()

    outcome = process(app, clock, raw)

    assert outcome.outcome is InboundOutcome.PROCESSED and "suppressed" in outcome.detail
    contact = db.scalars(select(Contact)).one()
    assert contact.status is ContactStatus.BOUNCED
    assert db.scalar(select(Suppression.reason)) == "bounced"


def soft_bounce(address: str, n: int) -> bytes:
    """An RFC 3464 report of a temporary failure (mailbox full)."""
    return (
        "From: MAILER-DAEMON@mx.example\r\n"
        "To: noreply@wg.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <soft-{n}@mx.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n'
        "\r\n--r\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full.\r\n"
        "--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 4.2.2\r\n"
        "Diagnostic-Code: smtp; 452 4.2.2 mailbox full\r\n--r--\r\n"
    ).encode()


def test_soft_bounces_suppress_only_when_they_keep_coming_over_days(app, clock, db, make_member):
    make_member("full@riverbank.example", name="Full")
    for n in range(5):
        process(app, clock, soft_bounce("full@riverbank.example", n))  # five in one day count once
    assert db.scalar(select(Contact.status)) is ContactStatus.ACTIVE

    for n in range(5, 11):
        clock.advance(days=1)
        process(app, clock, soft_bounce("full@riverbank.example", n))
    db.expire_all()
    assert db.scalar(select(Contact.status)) is ContactStatus.BOUNCED


def test_soft_bounce_score_is_forgotten_after_a_quiet_week(app, clock, db, make_member):
    make_member("full@riverbank.example", name="Full")
    for n in range(4):
        process(app, clock, soft_bounce("full@riverbank.example", n))
        clock.advance(days=1)
    clock.advance(days=10)
    process(app, clock, soft_bounce("full@riverbank.example", 9))

    db.expire_all()
    contact = db.scalars(select(Contact)).one()
    assert contact.bounce_score == pytest.approx(0.5)
    assert contact.status is ContactStatus.ACTIVE


def test_policy_rejection_is_our_problem_not_the_members(app, clock, db, make_member):
    raw = (SAMPLES / "gmail_policy_rejection.eml").read_bytes()
    outcome = process(app, clock, raw)

    assert outcome.outcome is InboundOutcome.ATTENTION
    assert "sending problem" in outcome.detail
    assert db.scalar(select(func.count()).select_from(Suppression)) == 0


@pytest.mark.parametrize(
    "sample",
    [
        "out_of_office_exchange.eml",
        "out_of_office_gmail.eml",
        "out_of_office_khmer_subject.eml",
    ],
)
def test_out_of_office_replies_cause_nothing(app, clock, db, deliver, smtp_server, sample):
    outcome = process(app, clock, (SAMPLES / sample).read_bytes())
    deliver()

    assert outcome.outcome is InboundOutcome.IGNORED
    assert smtp_server.messages == []  # nothing is ever sent in answer


def test_malformed_message_is_kept_for_attention(app, clock, db):
    raw = (SAMPLES / "malformed_mime.eml").read_bytes()

    assert process(app, clock, raw).outcome is InboundOutcome.ATTENTION
    assert db.scalar(select(InboundMessage.raw)) == raw


def test_unsubscribe_by_mail_to_the_list_unsubscribe_address(app, clock, db, invited):
    mailto = invited["amara@riverbank.example"]["List-Unsubscribe"].split("<mailto:")[1]
    token = mailto.split("subject=unsubscribe%20")[1].rstrip(">")
    message = EmailMessage()
    message["From"] = "amara@riverbank.example"
    message["To"] = mailto.split("?")[0]
    message["Subject"] = f"unsubscribe {token}"
    message["Message-ID"] = make_msgid(domain="riverbank.example")
    message.set_content("")

    assert process(app, clock, message.as_bytes()).outcome is InboundOutcome.PROCESSED
    assert (
        db.scalar(select(Contact.status).where(Contact.email == "amara@riverbank.example"))
        is ContactStatus.UNSUBSCRIBED
    )


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.eml")))
def test_every_sample_is_read_without_error_and_replaying_it_changes_nothing(
    app, clock, db, sample
):
    raw = (SAMPLES / sample).read_bytes()
    first = process(app, clock, raw)
    clock.advance(hours=1)
    replay = process(app, clock, raw)

    assert first.outcome is not None and replay.outcome is None
    assert db.scalar(select(func.count()).select_from(InboundMessage)) == 1


def test_wg_inbound_read_takes_a_message_on_standard_input(tmp_path):
    environment = {
        "PATH": os.environ["PATH"],
        "WG_INSTANCE_PATH": str(tmp_path / "instance"),
        "WG_DATABASE_URL": f"sqlite:///{tmp_path / 'wg.sqlite3'}",
        "WG_SECRET_KEY": "test",
    }
    subprocess.run([WG, "db", "upgrade"], env=environment, check=True, capture_output=True)
    raw = (SAMPLES / "out_of_office_gmail.eml").read_bytes()

    result = subprocess.run(
        [WG, "inbound", "read"], input=raw, env=environment, capture_output=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("auto_reply: ignored")
    replay = subprocess.run(
        [WG, "inbound", "read"], input=raw, env=environment, capture_output=True, timeout=60
    )
    assert replay.stdout.decode().startswith("already processed")
