"""Who is coming: a meeting's answers counted, and by organisation, as the console shows them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.models import (
    Contact,
    ContactStatus,
    Invitation,
    Meeting,
    MeetingStatus,
    Rsvp,
)

ANSWER_ORDER = (Rsvp.YES, Rsvp.MAYBE, Rsvp.NO, Rsvp.NONE)


@dataclass
class Tally:
    """A meeting's answers: counts, and each organisation's people."""

    meeting: Meeting
    counts: dict[str, int]
    organisations: list[tuple[str, list[Invitation]]] = field(default_factory=list)

    @property
    def invited(self) -> int:
        return sum(self.counts.values())

    @property
    def substitutes(self) -> int:
        return sum(1 for _, people in self.organisations for i in people if i.substitute_name)


def next_meeting(db: Session, *, now: datetime) -> Meeting | None:
    """The next scheduled meeting that has not started."""
    return db.scalars(
        select(Meeting)
        .where(Meeting.status == MeetingStatus.SCHEDULED, Meeting.starts_at > now)
        .order_by(Meeting.starts_at)
        .limit(1)
    ).first()


def invitations(db: Session, meeting: Meeting) -> Sequence[Invitation]:
    """Everyone invited to `meeting`, by organisation and name."""
    found = db.scalars(
        select(Invitation)
        .options(selectinload(Invitation.contact).selectinload(Contact.organisation))
        .where(Invitation.meeting_id == meeting.id)
    ).all()
    return sorted(found, key=lambda i: (i.contact.organisation.name.casefold(), i.contact.name))


def tally(db: Session, meeting: Meeting) -> Tally:
    """The answers to `meeting`, counted and grouped by organisation."""
    counts = {answer.value: 0 for answer in ANSWER_ORDER}
    groups: dict[str, list[Invitation]] = {}
    for invitation in invitations(db, meeting):
        counts[invitation.answer.value] += 1
        groups.setdefault(invitation.contact.organisation.name, []).append(invitation)
    return Tally(meeting, counts, list(groups.items()))


def troubled_contacts(db: Session) -> Sequence[Contact]:
    """Members whose mail bounces or who unsubscribed: they get no mail now."""
    return db.scalars(
        select(Contact)
        .options(selectinload(Contact.organisation))
        .where(Contact.status.in_([ContactStatus.BOUNCED, ContactStatus.UNSUBSCRIBED]))
        .order_by(Contact.name)
    ).all()
