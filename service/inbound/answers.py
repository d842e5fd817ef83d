"""Answers by mail: a calendar reply or a plain reply that records an invitee's RSVP.

Anyone can write any From and any ATTENDEE, so an answer is recorded only when it comes from
the invitee (From is the invited address, and a calendar reply's attendee is that address too)
and is tied to that invitee's invitation: In-Reply-To/References name the invitation or later
mail about it, or the calendar reply carries the event UID made for that invitee alone
(emails.calendar.invitation_uid). Anything else waits for a person.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from emails.attention import Attention
from emails.calendar import invitation_uid
from emails.inbound import Answer, CalendarReply, Inbound, Reply
from service.config import settings
from service.meetings.operations import AnswerData, record_answer
from service.models import (
    AnswerChannel,
    Contact,
    InboundOutcome,
    Invitation,
    Meeting,
    OutboundEmail,
    Rsvp,
)

ANSWERS = {Answer.YES: Rsvp.YES, Answer.NO: Rsvp.NO, Answer.MAYBE: Rsvp.MAYBE}
# meeting-<public id>@domain (the shared UID of old), or meeting-<public id>-<MAC>@domain.
_MEETING_UID = re.compile(r"meeting-([0-9a-f]{32})(?:-[0-9a-f]{32})?@.+")


def calendar_answer(
    db: Session, inbound: Inbound, reply: CalendarReply, *, now: datetime
) -> tuple[InboundOutcome, str | Attention]:
    """Record the answer of a calendar REPLY from the invitee about their own invitation."""
    match = _MEETING_UID.fullmatch(reply.uid)
    meeting = (
        db.scalar(select(Meeting).where(Meeting.public_id == match.group(1))) if match else None
    )
    if meeting is None:
        return InboundOutcome.ATTENTION, Attention("unknown_event", {"uid": reply.uid})
    sender = inbound.sender or ""
    if reply.attendee != sender:
        return InboundOutcome.ATTENTION, Attention(
            "calendar_for_another", {"attendee": reply.attendee, "sender": sender or "-"}
        )
    invitation = _invitation(db, meeting, sender)
    if invitation is None:
        return InboundOutcome.ATTENTION, Attention("calendar_not_invited", {"sender": sender})
    if not (_is_own_uid(invitation, reply.uid) or _replies_to(db, inbound, invitation)):
        return InboundOutcome.ATTENTION, Attention("calendar_untied", {"sender": sender})
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


def reply_answer(
    db: Session, inbound: Inbound, reply: Reply, *, now: datetime
) -> tuple[InboundOutcome, str | Attention]:
    """Record the answer in a plain reply from the invitee to their invitation's mail."""
    invitation = invitation_replied_to(db, inbound.references)
    if invitation is None:
        return InboundOutcome.ATTENTION, Attention("reply_not_to_invitation")
    if (inbound.sender or "") != invitation.contact.email:
        return InboundOutcome.ATTENTION, Attention(
            "reply_from_another",
            {"invitee": invitation.contact.email, "sender": inbound.sender or "-"},
        )
    if reply.answer is None:
        return InboundOutcome.ATTENTION, Attention("reply_unclear")
    return _answer(
        db, invitation, ANSWERS[reply.answer], AnswerChannel.EMAIL, evidence=reply.text, now=now
    )


def invitation_replied_to(db: Session, references: tuple[str, ...]) -> Invitation | None:
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


def _invitation(db: Session, meeting: Meeting, address: str) -> Invitation | None:
    return db.scalar(
        select(Invitation)
        .join(Contact)
        .where(Invitation.meeting_id == meeting.id, Contact.email == address)
    )


def _is_own_uid(invitation: Invitation, uid: str) -> bool:
    """Whether `uid` is the event UID made for this invitation alone."""
    config = settings()
    expected = invitation_uid(
        invitation.meeting.public_id,
        invitation.contact_id,
        secret=config.secret_key,
        domain=config.mail_domain,
    )
    return hmac.compare_digest(uid.encode(), expected.encode())


def _replies_to(db: Session, inbound: Inbound, invitation: Invitation) -> bool:
    replied_to = invitation_replied_to(db, inbound.references)
    return replied_to is not None and replied_to.id == invitation.id


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
