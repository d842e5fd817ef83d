"""Acting on mail that comes back: bounces, calendar replies, plain replies, unsubscribes.

Each message is processed once (keyed by the hash of its bytes and by its Message-ID).
Nothing here ever sends a reply, so an auto-responder can never start a mail loop.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from emails.inbound import Answer, Bounce, CalendarReply, Inbound, Kind, Reply, classify
from service import audit, tokens
from service.db import insert_ignoring_duplicates
from service.meetings.operations import AnswerData, record_answer
from service.membership.operations import unsubscribe
from service.models import (
    AnswerChannel,
    Contact,
    ContactStatus,
    InboundMessage,
    InboundOutcome,
    Invitation,
    Meeting,
    OutboundEmail,
    Rsvp,
    Suppression,
    TokenPurpose,
)

# Mailman's defaults, more or less: a hard bounce counts 1, a soft one 0.5, at most one a
# day; the score is forgotten after a week without bounces; at 3 the address is suppressed.
HARD_SCORE = 1.0
SOFT_SCORE = 0.5
SCORE_THRESHOLD = 3.0
SCORE_STALE_AFTER = timedelta(days=7)
UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*unsubscribe\s+([A-Za-z0-9_-]{8,64})\s*$", re.IGNORECASE)
ANSWERS = {Answer.YES: Rsvp.YES, Answer.NO: Rsvp.NO, Answer.MAYBE: Rsvp.MAYBE}


@dataclass(frozen=True)
class Outcome:
    kind: str
    outcome: InboundOutcome | None  # None: this message was processed before
    detail: str

    def summary(self) -> str:
        if self.outcome is None:
            return f"already processed: {self.detail}"
        return f"{self.kind}: {self.outcome.value}: {self.detail}"


def process_message(db: Session, raw: bytes, *, now: datetime) -> Outcome:
    """Classify one raw message and act on it, once."""
    digest = hashlib.sha256(raw).hexdigest()
    inbound = classify(raw)
    message_id = (inbound.message_id or "")[:250]
    seen = db.scalar(
        select(InboundMessage.id).where(
            or_(
                InboundMessage.digest == digest,
                (InboundMessage.message_id == message_id) if message_id else False,
            )
        )
    )
    duplicate = Outcome(inbound.kind.value, None, f"message {message_id or digest[:12]}")
    if seen:
        return duplicate
    # Claim the message before acting: a second process reading the same message waits on
    # the unique digest, then finds it taken and does nothing.
    claimed = insert_ignoring_duplicates(
        db,
        InboundMessage,
        ("digest",),
        dict(
            digest=digest,
            message_id=message_id,
            sender=(inbound.sender or "")[:254],
            subject=inbound.subject[:300],
            kind=inbound.kind.value,
            outcome=InboundOutcome.IGNORED,
            detail="",
            excerpt=inbound.reply.text[:2000] if inbound.reply else "",
            received_at=now,
        ),
    )
    if not claimed:
        return duplicate
    outcome, detail = _act(db, inbound, now=now)
    record = db.scalars(select(InboundMessage).where(InboundMessage.digest == digest)).one()
    record.outcome = outcome
    record.detail = detail[:2000]
    record.raw = raw if outcome is InboundOutcome.ATTENTION else None
    db.flush()
    return Outcome(inbound.kind.value, outcome, detail)


def _act(db: Session, inbound: Inbound, *, now: datetime) -> tuple[InboundOutcome, str]:
    if inbound.kind is Kind.BOUNCE and inbound.bounce is not None:
        return _bounce(db, inbound.bounce, now=now)
    if inbound.kind is Kind.CALENDAR_REPLY and inbound.calendar is not None:
        return _calendar_reply(db, inbound, inbound.calendar, now=now)
    if inbound.kind is Kind.AUTO_REPLY:
        return InboundOutcome.IGNORED, f"auto-reply ({inbound.reason})"
    if inbound.kind is Kind.MALFORMED:
        return InboundOutcome.ATTENTION, f"could not be read: {inbound.reason}"
    unsubscribed = _unsubscribe_request(db, inbound, now=now)
    if unsubscribed is not None:
        return unsubscribed
    if inbound.kind is Kind.REPLY and inbound.reply is not None:
        return _plain_reply(db, inbound, inbound.reply, now=now)
    return InboundOutcome.ATTENTION, "not a reply to anything the service sent"


def _contact(db: Session, address: str) -> Contact | None:
    return db.scalar(select(Contact).where(Contact.email == address.lower()))


def _bounce(db: Session, bounce: Bounce, *, now: datetime) -> tuple[InboundOutcome, str]:
    recipient = bounce.recipient
    if bounce.original_message_id:
        sent = db.scalar(
            select(OutboundEmail.recipient).where(
                OutboundEmail.message_id == bounce.original_message_id
            )
        )
        recipient = sent or recipient
    if bounce.policy:
        # The receiving server refused us (DMARC, reputation): the sender must act, not the
        # member. It is shown to the coordinator and never counted against the address.
        return InboundOutcome.ATTENTION, (
            f"sending problem: {recipient} refused our mail ({bounce.status}): {bounce.diagnostic}"
        )
    contact = _contact(db, recipient) if recipient else None
    if contact is None:
        return InboundOutcome.ATTENTION, f"bounce for an unknown address {recipient!r}"
    hard_address_failure = bounce.hard and bounce.status.startswith("5.1.")
    if contact.last_bounce_at is not None and now - contact.last_bounce_at > SCORE_STALE_AFTER:
        contact.bounce_score = 0.0
    counted_today = (
        contact.last_bounce_at is not None and contact.last_bounce_at.date() == now.date()
    )
    if not counted_today:
        contact.bounce_score += HARD_SCORE if bounce.hard else SOFT_SCORE
    contact.last_bounce_at = now
    audit.record(
        db,
        "contact.bounced",
        contact,
        at=now,
        status=bounce.status,
        score=contact.bounce_score,
        diagnostic=bounce.diagnostic[:300],
    )
    if hard_address_failure or contact.bounce_score >= SCORE_THRESHOLD:
        _suppress_bounced(db, contact, now=now)
        return InboundOutcome.PROCESSED, (
            f"{contact.email} bounced ({bounce.status}) and is suppressed"
        )
    return InboundOutcome.PROCESSED, (
        f"{contact.email} bounced ({bounce.status}), score {contact.bounce_score:.1f}"
    )


def _suppress_bounced(db: Session, contact: Contact, *, now: datetime) -> None:
    contact.status = ContactStatus.BOUNCED
    insert_ignoring_duplicates(
        db, Suppression, ("email",), dict(email=contact.email, reason="bounced", created_at=now)
    )
    audit.record(db, "contact.suppressed", contact, at=now, reason="bounced")


def _calendar_reply(
    db: Session, inbound: Inbound, reply: CalendarReply, *, now: datetime
) -> tuple[InboundOutcome, str]:
    match = re.fullmatch(r"meeting-([0-9a-f]{32})@.+", reply.uid)
    meeting = (
        db.scalar(select(Meeting).where(Meeting.public_id == match.group(1))) if match else None
    )
    if meeting is None:
        return InboundOutcome.ATTENTION, f"calendar reply for an unknown event {reply.uid}"
    invitation = db.scalar(
        select(Invitation)
        .join(Contact)
        .where(Invitation.meeting_id == meeting.id, Contact.email == reply.attendee)
    )
    if invitation is None:
        # Someone answering for an address that was not invited is not trusted.
        return InboundOutcome.ATTENTION, (
            f"calendar reply from {reply.attendee}, who was not invited to {reply.uid}"
        )
    if reply.sequence < meeting.sequence:
        return InboundOutcome.IGNORED, (
            f"stale calendar reply (sequence {reply.sequence}, current {meeting.sequence})"
        )
    return _answer(
        db,
        invitation,
        ANSWERS[reply.answer],
        AnswerChannel.CALENDAR,
        evidence=reply.comment,
        now=now,
    )


def _answer(
    db: Session,
    invitation: Invitation,
    answer: Rsvp,
    via: AnswerChannel,
    *,
    evidence: str,
    now: datetime,
) -> tuple[InboundOutcome, str]:
    data = AnswerData(
        answer=answer,
        note=invitation.note,
        substitute_name=invitation.substitute_name,
        substitute_email=invitation.substitute_email,
        via=via,
        evidence={"text": evidence[:500]} if evidence else {},
    )
    if not record_answer(db, invitation, data, now=now):
        return InboundOutcome.IGNORED, "the meeting has started or was cancelled"
    return InboundOutcome.PROCESSED, (
        f"{invitation.contact.email} answered {answer.value} by {via.value}"
    )


def _plain_reply(
    db: Session, inbound: Inbound, reply: Reply, *, now: datetime
) -> tuple[InboundOutcome, str]:
    invitation = _invitation_replied_to(db, reply.references)
    if invitation is None:
        return InboundOutcome.ATTENTION, "a reply, but not to an invitation"
    if (inbound.sender or "") != invitation.contact.email:
        return InboundOutcome.ATTENTION, (
            f"a reply about {invitation.contact.email}'s invitation from {inbound.sender}"
        )
    if reply.answer is None:
        return InboundOutcome.ATTENTION, "a reply to an invitation without a clear answer"
    return _answer(
        db, invitation, ANSWERS[reply.answer], AnswerChannel.EMAIL, evidence=reply.text, now=now
    )


def _invitation_replied_to(db: Session, references: tuple[str, ...]) -> Invitation | None:
    """The invitation that a reply's In-Reply-To / References point at: the invitation
    itself, or any later mail about it (follow-up, reminder, update)."""
    if not references:
        return None
    invitation = db.scalar(
        select(Invitation).where(Invitation.invitation_message_id.in_(references))
    )
    if invitation is not None:
        return invitation
    sent = db.scalars(
        select(OutboundEmail).where(
            OutboundEmail.message_id.in_(references), OutboundEmail.topic.like("meeting:%")
        )
    ).first()
    if sent is None:
        return None
    meeting_id = int(sent.topic.split(":", 1)[1])
    return db.scalar(
        select(Invitation)
        .join(Contact)
        .where(Invitation.meeting_id == meeting_id, Contact.email == sent.recipient)
    )


def _unsubscribe_request(
    db: Session, inbound: Inbound, *, now: datetime
) -> tuple[InboundOutcome, str] | None:
    """The mailto: of List-Unsubscribe: a message whose subject is "unsubscribe TOKEN"."""
    match = UNSUBSCRIBE_SUBJECT.match(inbound.subject or "")
    if match is None:
        return None
    lookup = tokens.find(db, TokenPurpose.UNSUBSCRIBE, match.group(1), now=now)
    contact = db.get(Contact, lookup.token.subject_id) if lookup.token else None
    if contact is None:
        return InboundOutcome.ATTENTION, "an unsubscribe request with an unknown token"
    unsubscribe(db, contact, now=now, via="mailto")
    return InboundOutcome.PROCESSED, f"{contact.email} unsubscribed by email"
