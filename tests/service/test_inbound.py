"""Mail that comes back: answers by calendar or reply, bounces, auto-replies, unsubscribes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import icalendar
import pytest
from sqlalchemy import func, select

from emails.verp import return_path
from service import coordinators as coordinator_service
from service.cli import cli
from service.config import settings
from service.db import session_scope
from service.inbound import operations as inbound_operations
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
    OutboundEmail,
    Rsvp,
    Suppression,
)
from service.notices import digest
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
    sender: str | None = None,
    uid: str | None = None,
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
    answer.add("uid", uid or str(event["UID"]))
    answer.add("sequence", int(event["SEQUENCE"]) if sequence is None else sequence)
    answer.add("dtstamp", event["DTSTAMP"].dt)
    answer.add("dtstart", event["DTSTART"].dt)
    attendee_prop = icalendar.vCalAddress(f"mailto:{address}")
    attendee_prop.params["PARTSTAT"] = partstat
    answer.add("attendee", attendee_prop)
    reply.add_component(answer)
    message = EmailMessage()
    message["From"] = sender or ("calendar-notification@google.com" if robot else address)
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


def test_calendar_answer_sent_by_a_calendar_robot_waits_for_a_person(app, clock, db, invited):
    # From is not the invitee: anyone could have sent it, so a person decides.
    raw = calendar_reply(invited["amara@riverbank.example"], "ACCEPTED", robot=True)

    assert process(app, clock, raw).outcome is InboundOutcome.ATTENTION
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)


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


def mailed(app, clock, deliver, make_member, db, address: str) -> OutboundEmail:
    """A member who was sent an invitation; returns the outbox row of that message."""
    make_member(address, name="Member")
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    return sent_to(db, address)


SAMPLE_RETURN_PATH = re.compile(rb"bounces\+b-[0-9]+-[0-9a-f]{16}@wg\.example")
SAMPLE_INVITATION_ID = re.compile(rb"<invitation-2026-12\.[A-Za-z0-9_]+@wg\.example>")


def sample_about(app, name: str, row: OutboundEmail) -> bytes:
    """A sample bounce as it comes back for `row`: to its return path, quoting its Message-ID."""
    raw = (SAMPLES / name).read_bytes()
    raw = SAMPLE_RETURN_PATH.sub(return_path_of(app, row).encode(), raw)
    return SAMPLE_INVITATION_ID.sub(row.message_id.encode(), raw)


def test_hard_bounce_suppresses_the_address(app, clock, db, deliver, make_member):
    row = mailed(app, clock, deliver, make_member, db, "dara.sok@riverbank.example")
    raw = sample_about(app, "postfix_bounce.eml", row)

    outcome = process(app, clock, raw)

    assert outcome.outcome is InboundOutcome.PROCESSED and "suppressed" in outcome.detail
    contact = db.scalars(select(Contact)).one()
    assert contact.status is ContactStatus.BOUNCED
    assert db.scalar(select(Suppression.reason)) == "bounced"


def soft_bounce(address: str, n: int, *, to: str) -> bytes:
    """An RFC 3464 report of a temporary failure (mailbox full), sent to return path `to`."""
    return (
        "From: MAILER-DAEMON@mx.example\r\n"
        f"To: {to}\r\n"
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


def test_soft_bounces_suppress_only_when_they_keep_coming_over_days(
    app, clock, db, deliver, make_member
):
    row = mailed(app, clock, deliver, make_member, db, "full@riverbank.example")
    to = return_path_of(app, row)
    for n in range(5):
        process(app, clock, soft_bounce(row.recipient, n, to=to))  # five in one day count once
    assert db.scalar(select(Contact.status)) is ContactStatus.ACTIVE

    for n in range(5, 11):
        clock.advance(days=1)
        process(app, clock, soft_bounce(row.recipient, n, to=to))
    db.expire_all()
    assert db.scalar(select(Contact.status)) is ContactStatus.BOUNCED


def test_soft_bounce_score_is_forgotten_after_a_quiet_week(app, clock, db, deliver, make_member):
    row = mailed(app, clock, deliver, make_member, db, "full@riverbank.example")
    to = return_path_of(app, row)
    for n in range(4):
        process(app, clock, soft_bounce(row.recipient, n, to=to))
        clock.advance(days=1)
    clock.advance(days=10)
    process(app, clock, soft_bounce(row.recipient, 9, to=to))

    db.expire_all()
    contact = db.scalars(select(Contact)).one()
    assert contact.bounce_score == pytest.approx(0.5)
    assert contact.status is ContactStatus.ACTIVE


def test_policy_rejection_is_our_problem_not_the_members(app, clock, db, deliver, make_member):
    row = mailed(app, clock, deliver, make_member, db, "sophea@khmerwomen.example")
    outcome = process(app, clock, sample_about(app, "gmail_policy_rejection.eml", row))

    assert outcome.outcome is InboundOutcome.ATTENTION
    assert "sending problem" in outcome.detail
    assert db.scalar(select(InboundMessage.reason)) == "sending_refused"
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


# --- forged answers (issue 10, finding 1) ---------------------------------------------------

MALLORY = "mallory@evil.example"
DMARC_FAIL = (
    "mx.wg.test; dkim=none; spf=softfail smtp.mailfrom=riverbank.example; "
    "dmarc=fail (p=none dis=none) header.from=riverbank.example"
)


def event_uid(invitation_mail) -> str:
    part = next(
        p for p in invitation_mail.message.walk() if p.get_content_type() == "text/calendar"
    )
    event = next(iter(icalendar.Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")))
    return str(event["UID"])


def with_headers(raw: bytes, **headers: str) -> bytes:
    """The message with some headers put on top, as a receiving server adds them."""
    top = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return top.encode() + raw


def test_each_invitee_has_an_event_uid_of_their_own_that_survives_a_reschedule(
    app, clock, db, invited, deliver, smtp_server
):
    first = {address: event_uid(mail) for address, mail in invited.items()}
    with app.app_context(), session_scope(app) as session:
        meeting = session.scalars(select(Meeting)).one()
        operations.reschedule(session, meeting, now=clock(), location="New office")
    deliver()
    updates = {
        m.rcpt_tos[0]: event_uid(m)
        for m in smtp_server.messages
        if any(part.get_content_type() == "text/calendar" for part in m.message.walk())
    }

    assert len(set(first.values())) == 2
    assert updates == first


def test_calendar_reply_from_a_stranger_for_a_members_address_changes_nothing(
    app, clock, db, invited
):
    amara = invited["amara@riverbank.example"]
    raw = calendar_reply(amara, "DECLINED", sender=MALLORY)

    outcome = process(app, clock, raw)

    assert outcome.outcome is InboundOutcome.ATTENTION
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)
    assert (
        db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "rsvp.answered")
        )
        == 0
    )


def test_calendar_reply_with_the_meetings_shared_uid_is_not_tied_to_an_invitation(
    app, clock, db, invited
):
    public_id = db.scalar(select(Meeting.public_id))
    raw = calendar_reply(
        invited["amara@riverbank.example"], "DECLINED", uid=f"meeting-{public_id}@wg.test"
    )

    assert process(app, clock, raw).outcome is InboundOutcome.ATTENTION
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)


def test_calendar_reply_with_another_invitees_uid_is_not_taken(app, clock, db, invited):
    bophas_uid = event_uid(invited["bopha@memory.example"])
    raw = calendar_reply(invited["amara@riverbank.example"], "DECLINED", uid=bophas_uid)

    assert process(app, clock, raw).outcome is InboundOutcome.ATTENTION
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)
    assert answer_of(db, "bopha@memory.example") == (Rsvp.NONE, None)


def test_plain_reply_whose_dmarc_failed_waits_for_a_person(app, clock, db, invited):
    raw = plain_reply(invited["amara@riverbank.example"], "No, sorry.")

    outcome = process(app, clock, with_headers(raw, Authentication_Results=DMARC_FAIL))

    assert outcome.outcome is InboundOutcome.ATTENTION
    assert "DMARC" in outcome.detail
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)


def test_calendar_reply_whose_dmarc_failed_waits_for_a_person(app, clock, db, invited):
    raw = calendar_reply(invited["amara@riverbank.example"], "DECLINED")

    outcome = process(app, clock, with_headers(raw, Authentication_Results=DMARC_FAIL))

    assert outcome.outcome is InboundOutcome.ATTENTION
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)


def test_only_the_topmost_authentication_results_counts(app, clock, db, invited):
    raw = plain_reply(invited["amara@riverbank.example"], "No, sorry.")
    # A sender may write any Authentication-Results it likes below the one our server adds.
    raw = with_headers(raw, Authentication_Results=DMARC_FAIL)
    raw = with_headers(raw, Authentication_Results="mx.wg.test; dmarc=pass header.from=x")

    assert process(app, clock, raw).outcome is InboundOutcome.PROCESSED
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NO, AnswerChannel.EMAIL)


# --- forged bounces (issue 10, finding 2) ---------------------------------------------------


def delivery_report(
    recipient: str,
    *,
    to: str = "noreply@wg.test",
    status: str = "5.1.1",
    returned_message_id: str = "<unknown@wg.test>",
    returned_return_path: str = "",
    sender: str = "MAILER-DAEMON@mx.example",
) -> bytes:
    """An RFC 3464 report as Postfix writes it, with the headers of the returned message."""
    return (
        f"From: Mail Delivery System <{sender}>\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain='mx.example')}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n'
        "\r\n--r\r\nContent-Type: text/plain\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n"
        f"<{recipient}>: host mx.example said: 550 {status} User unknown\r\n"
        "--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} User unknown\r\n"
        "--r\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + (f"Return-Path: <{returned_return_path}>\r\n" if returned_return_path else "")
        + f"From: Working Group <noreply@wg.test>\r\nTo: {recipient}\r\n"
        f"Message-ID: {returned_message_id}\r\nSubject: Monthly meeting\r\n"
        "--r--\r\n"
    ).encode()


def plain_text_bounce(recipient: str, *, to: str = "noreply@wg.test") -> bytes:
    return (
        "From: MAILER-DAEMON@evil.example\r\n"
        f"To: {to}\r\n"
        "Subject: failure notice\r\n"
        f"Message-ID: {make_msgid(domain='evil.example')}\r\n"
        "\r\n"
        "Hi. This is the qmail-send program at evil.example.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"<{recipient}>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n"
    ).encode()


def sent_to(db, address: str) -> OutboundEmail:
    return db.scalars(
        select(OutboundEmail).where(OutboundEmail.recipient == address).order_by(OutboundEmail.id)
    ).first()


def return_path_of(app, row: OutboundEmail) -> str:
    return return_path("noreply@wg.test", row.id, settings(app).secret_key)


def status_of(db, address: str) -> ContactStatus:
    db.expire_all()
    return db.scalar(select(Contact.status).where(Contact.email == address))


@pytest.mark.parametrize("forged", ["delivery report", "plain text"])
def test_a_bounce_tied_to_nothing_we_sent_suppresses_no_one(app, clock, db, invited, forged):
    amara = "amara@riverbank.example"
    raw = (
        delivery_report(amara, sender="MAILER-DAEMON@evil.example")
        if forged == "delivery report"
        else plain_text_bounce(amara)
    )

    outcome = process(app, clock, raw)

    assert outcome.outcome is InboundOutcome.ATTENTION
    assert status_of(db, amara) is ContactStatus.ACTIVE
    assert db.scalar(select(func.count()).select_from(Suppression)) == 0
    with app.app_context():
        attention = digest.collect(db, now=clock()).context["attention"]
    assert [item["sender"] for item in attention] == ["mailer-daemon@evil.example"]


def test_the_digest_says_why_mail_needs_a_person_in_each_coordinators_language(
    app, clock, db, invited, deliver, smtp_server, coordinators
):
    with app.app_context():
        coordinator_service.add(db, coordinators[1], language="km", actor="test", now=clock())
        db.commit()
    process(app, clock, plain_text_bounce("amara@riverbank.example"))
    smtp_server.clear()

    send_digest(app, clock, deliver)

    english = smtp_server.single_message_to(coordinators[0]).text
    khmer = smtp_server.single_message_to(coordinators[1]).text
    assert (
        "A bounce (5.1.1) naming amara@riverbank.example, tied to no message the service sent; "
        "nothing was done with it." in english
    )
    assert (
        "អ៊ីមែលផ្ញើមិនដល់ (5.1.1) ដែលនិយាយពី amara@riverbank.example "
        "មិនភ្ជាប់ទៅនឹងសារណាមួយដែលប្រព័ន្ធបានផ្ញើទេ" in khmer
    )
    assert "tied to no message" not in khmer


def send_digest(app, clock, deliver) -> None:
    with app.app_context(), session_scope(app) as session:
        digest.send_now(session, now=clock())
    deliver()


def filed_for_a_person(db, clock, **fields) -> None:
    db.add(
        InboundMessage(
            digest="0" * 64,
            sender="postmaster@example.org",
            subject="Undelivered Mail",
            kind="bounce",
            outcome=InboundOutcome.ATTENTION,
            received_at=clock(),
            **fields,
        )
    )
    db.commit()


def test_the_words_in_a_reason_come_from_the_message_and_are_shown_not_run(
    app, clock, db, deliver, smtp_server, coordinators
):
    hostile = {"recipient": "a@example.org", "status": "5.7.1", "diagnostic": "<img src=x>"}
    filed_for_a_person(db, clock, reason="sending_refused", reason_args=hostile)

    send_digest(app, clock, deliver)

    mail = smtp_server.single_message_to(coordinators[0])
    assert "a@example.org refused our mail (5.7.1): <img src=x>" in mail.text
    assert "(5.7.1): &lt;img src=x&gt;" in mail.html and "<img src=x>" not in mail.html


def test_mail_filed_before_reasons_were_kept_shows_its_english_detail(
    app, clock, db, deliver, smtp_server, coordinators
):
    filed_for_a_person(db, clock, detail="not a reply to anything the service sent")

    send_digest(app, clock, deliver)

    assert "  not a reply to anything the service sent\n" in (
        smtp_server.single_message_to(coordinators[0]).text
    )


def test_a_bounce_to_our_return_path_acts_on_the_recipient_of_that_message(app, clock, db, invited):
    row = sent_to(db, "amara@riverbank.example")
    # The report names someone else: the return path, which we signed, decides.
    raw = delivery_report("bopha@memory.example", to=return_path_of(app, row))

    outcome = process(app, clock, with_headers(raw, Delivered_To=return_path_of(app, row)))

    assert outcome.outcome is InboundOutcome.PROCESSED
    assert status_of(db, "amara@riverbank.example") is ContactStatus.BOUNCED
    assert status_of(db, "bopha@memory.example") is ContactStatus.ACTIVE


def test_a_report_to_the_envelope_sender_the_invitation_left_with_suppresses_the_member(
    app, clock, db, invited
):
    # As Postfix delivers a DSN: to the envelope sender (MAIL FROM) of the message we sent.
    envelope_sender = invited["bopha@memory.example"].mail_from
    raw = delivery_report("bopha@memory.example", to=envelope_sender)

    outcome = process(app, clock, with_headers(raw, Delivered_To=envelope_sender))

    assert outcome.outcome is InboundOutcome.PROCESSED
    assert status_of(db, "bopha@memory.example") is ContactStatus.BOUNCED
    assert status_of(db, "amara@riverbank.example") is ContactStatus.ACTIVE


def test_a_bounce_whose_returned_message_we_sent_acts_on_its_recipient(app, clock, db, invited):
    row = sent_to(db, "bopha@memory.example")
    raw = delivery_report("bopha@memory.example", returned_message_id=row.message_id)

    assert process(app, clock, raw).outcome is InboundOutcome.PROCESSED
    assert status_of(db, "bopha@memory.example") is ContactStatus.BOUNCED


def test_a_return_path_with_a_forged_signature_is_not_believed(app, clock, db, invited):
    row = sent_to(db, "amara@riverbank.example")
    forged = return_path("noreply@wg.test", row.id, "not-our-secret")
    raw = delivery_report("amara@riverbank.example", to=forged, returned_return_path=forged)

    assert process(app, clock, with_headers(raw, Delivered_To=forged)).outcome is (
        InboundOutcome.ATTENTION
    )
    assert status_of(db, "amara@riverbank.example") is ContactStatus.ACTIVE


# --- poison messages (issue 10, finding 3) --------------------------------------------------


def read_from_stdin(app, raw: bytes):
    return app.test_cli_runner().invoke(cli, ["inbound", "read"], input=raw)


@pytest.mark.parametrize("header", ["From", "Subject"])
def test_a_nul_byte_in_a_header_is_filed_and_read_exits_0(app, clock, db, invited, header):
    raw = plain_reply(invited["amara@riverbank.example"], "Yes, I will attend.")
    raw = re.sub(
        rf"^{header}: ".encode(), f"{header}: a\x00b\x01".encode(), raw, count=1, flags=re.M
    )
    assert b"\x00" in raw

    result = read_from_stdin(app, raw)

    assert result.exit_code == 0, result.output
    record = db.scalars(select(InboundMessage)).one()
    assert "\x00" not in record.sender + record.subject + record.detail + record.excerpt
    again = read_from_stdin(app, raw)
    assert again.exit_code == 0 and again.stdout.startswith("already processed")


def test_seventy_thousand_references_are_read_and_the_reply_still_counts(app, clock, db, invited):
    invitation_id = invited["amara@riverbank.example"]["Message-ID"]
    many = " ".join(f"<thread-{n}@lists.example>" for n in range(70_000))
    raw = plain_reply(invited["amara@riverbank.example"], "Yes, I will attend.")
    raw = raw.replace(
        f"\nReferences: {invitation_id}".encode(),
        f"\nReferences: {many}\r\n {invitation_id}".encode(),
        1,
    )

    result = read_from_stdin(app, raw)

    assert result.exit_code == 0, result.output
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.YES, AnswerChannel.EMAIL)


def test_a_message_that_breaks_processing_is_filed_with_the_reason_and_read_exits_0(
    app, clock, db, invited, monkeypatch
):
    def breaks(session, inbound, *, now):  # a bug that this message trips, every time
        raise ValueError("unexpected input")

    monkeypatch.setattr(inbound_operations, "_act", breaks)
    raw = plain_reply(invited["amara@riverbank.example"], "Yes, I will attend.")

    result = read_from_stdin(app, raw)

    assert result.exit_code == 0, result.output
    assert "attention" in result.stdout
    record = db.scalars(select(InboundMessage)).one()
    assert (record.outcome, record.raw) == (InboundOutcome.ATTENTION, raw)
    assert "ValueError" in record.detail
    assert answer_of(db, "amara@riverbank.example") == (Rsvp.NONE, None)
    assert read_from_stdin(app, raw).stdout.startswith("already processed")
