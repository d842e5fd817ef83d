"""Substitutes named on the RSVP page: never a way around an unsubscribe or a bounce."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from service.db import session_scope
from service.inbound.operations import process_message
from service.meetings import operations
from service.models import (
    AuditEvent,
    Contact,
    ContactStatus,
    InboundOutcome,
    Invitation,
    Meeting,
    OutboundEmail,
    OutboxStatus,
    Rsvp,
    Suppression,
)
from tests.service.test_meetings import add_meeting, answer, local
from tests.web import csrf_token

SUBSTITUTE = "sokha@memory.example"


@pytest.fixture
def members(make_member):
    return {
        "bopha": make_member(
            "bopha@memory.example", name="បុប្ផា", language="km", organisation="Memory Association"
        ),
        "chea": make_member(
            "chea@legal.example", name="Chea", language="en", organisation="Legal Aid Group"
        ),
    }


@pytest.fixture
def invitations(app, clock, deliver, smtp_server, members):
    """A meeting on 14 January; the invitation each member received on the 5th."""
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    received = {m.email: smtp_server.single_message_to(m.email) for m in members.values()}
    smtp_server.clear()
    return received


@pytest.fixture
def invited(invitations):
    """The invitation of bopha, who names the substitutes."""
    return invitations["bopha@memory.example"]


def invited_id(db) -> int:
    return db.scalar(select(Contact.id).where(Contact.email == "bopha@memory.example"))


def status_of(db, email: str) -> ContactStatus:
    return db.scalar(select(Contact.status).where(Contact.email == email))


def reminder_day(clock, deliver) -> None:
    clock.set(local(2027, 1, 13, 9, 0))
    deliver()


@pytest.mark.parametrize("suppressed", ["unsubscribed member", "bounced address"])
def test_a_suppressed_address_cannot_be_named_as_substitute(
    client, db, clock, make_member, invited, suppressed
):
    if suppressed == "unsubscribed member":
        make_member(SUBSTITUTE, name="Sokha", status=ContactStatus.UNSUBSCRIBED)
    else:
        db.add(Suppression(email=SUBSTITUTE, reason="bounced", created_at=clock()))
        db.commit()
    link = invited.link("/rsvp/")

    page = client.post(
        f"{link}?lang=en",
        data={
            "csrf_token": csrf_token(client, link),
            "answer": "no",
            "substitute_name": "Sokha",
            "substitute_email": SUBSTITUTE,
        },
    )

    assert page.status_code == 400
    beside_the_field = page.get_data(as_text=True).split('id="substitute_email-error"')[1]
    assert "does not receive mail from the working group" in beside_the_field[:400]
    stored = db.scalars(select(Invitation).where(Invitation.contact_id == invited_id(db))).one()
    assert (stored.answer, stored.substitute_email) == (Rsvp.NONE, "")
    answers = select(func.count()).where(AuditEvent.action == "rsvp.answered")
    assert db.scalar(answers) == 0


def test_substitute_mail_carries_a_visible_unsubscribe_link_and_the_list_headers(
    app, client, clock, deliver, smtp_server, db, invited
):
    answer(client, invited, "yes", substitute_name="Sokha", substitute_email=SUBSTITUTE)
    reminder_day(clock, deliver)

    details, reminder = smtp_server.messages_to(SUBSTITUTE)  # when named, then the reminder
    assert details["List-Unsubscribe"] and reminder.subject.startswith("រំលឹក")  # Reminder
    header = reminder["List-Unsubscribe"]
    assert reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = header.split(">")[0].lstrip("<")
    assert url.startswith("http://wg.test/unsubscribe/") and "<mailto:" in header
    assert url in reminder.text and url in reminder.html
    link = urlsplit(url).path
    page = client.get(link)
    assert page.status_code == 200 and SUBSTITUTE in page.get_data(as_text=True)

    stopped = client.post(link, data={"List-Unsubscribe": "One-Click"})

    assert stopped.status_code == 200
    assert db.scalar(select(Suppression.email)) == SUBSTITUTE
    assert status_of(db, "bopha@memory.example") is ContactStatus.ACTIVE  # who named her
    smtp_server.clear()
    with app.app_context(), session_scope(app) as session:
        operations.cancel(session, session.scalars(select(Meeting)).one(), now=clock())
    deliver()
    assert smtp_server.messages_to(SUBSTITUTE) == []
    assert len(smtp_server.messages_to("bopha@memory.example")) == 1


def test_a_substitute_can_stop_mail_by_the_mailto_of_list_unsubscribe(
    app, client, clock, deliver, smtp_server, db, invited
):
    answer(client, invited, "yes", substitute_name="Sokha", substitute_email=SUBSTITUTE)
    reminder_day(clock, deliver)
    mailto = smtp_server.messages_to(SUBSTITUTE)[-1]["List-Unsubscribe"].split("<mailto:")[1]
    request = EmailMessage()
    request["From"], request["To"] = SUBSTITUTE, mailto.split("?")[0]
    request["Subject"] = "unsubscribe " + mailto.split("subject=unsubscribe%20")[1].rstrip(">")
    request["Message-ID"] = make_msgid(domain="legal.example")
    request.set_content("")

    with app.app_context(), session_scope(app) as session:
        outcome = process_message(session, request.as_bytes(), now=clock())

    assert outcome.outcome is InboundOutcome.PROCESSED
    assert db.scalar(select(Suppression.email)) == SUBSTITUTE
    assert status_of(db, "bopha@memory.example") is ContactStatus.ACTIVE


def test_a_substitute_who_unsubscribed_after_being_named_gets_no_reminder(
    client, clock, deliver, smtp_server, db, invitations
):
    bopha = invitations["bopha@memory.example"]
    answer(client, bopha, "yes", substitute_name="Chea", substitute_email="chea@legal.example")
    # Chea then stops all mail with the link in her own invitation.
    unsubscribe = invitations["chea@legal.example"].link("/unsubscribe/")
    assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    reminder_day(clock, deliver)

    assert smtp_server.messages_to("chea@legal.example") == []
    assert len(smtp_server.messages_to("bopha@memory.example")) == 1
    to_substitute = select(OutboundEmail.status).where(
        OutboundEmail.dedupe_key.like("reminder-substitute:%")
    )
    assert db.scalar(to_substitute) is OutboxStatus.SUPPRESSED
