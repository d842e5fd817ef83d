"""A member's own page, reached from the footer of their mail: details, meetings, calendar,
a colleague, leaving."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from emails import names
from service import audit, coordinators, outbox, tokens
from service.config import settings
from service.meetings.operations import AnswerData, can_answer, mail_due_at, record_answer
from service.membership import operations
from service.models import (
    Contact,
    ContactStatus,
    Invitation,
    Language,
    Meeting,
    MeetingStatus,
    OrganisationStatus,
    Rsvp,
    TokenPurpose,
)

# Contact states that still belong to the organisation's list (and so may leave it).
ON_THE_LIST = (ContactStatus.ACTIVE, ContactStatus.UNCONFIRMED)


def find_member(db: Session, raw: str, *, now: datetime) -> Contact | None:
    """The contact of a member link; None for an unknown one."""
    lookup = tokens.find(db, TokenPurpose.MEMBER, raw, now=now)
    return db.get(Contact, lookup.token.subject_id) if lookup.token else None


def find_feed_owner(db: Session, raw: str, *, now: datetime) -> Contact | None:
    """The contact whose calendar feed `raw` is; None for an unknown one."""
    lookup = tokens.find(db, TokenPurpose.CALENDAR, raw, now=now)
    return db.get(Contact, lookup.token.subject_id) if lookup.token else None


@dataclass(frozen=True)
class MeetingLine:
    """One coming meeting as the member page lists it."""

    meeting: Meeting
    invitation: Invitation | None
    invitations_on: datetime | None  # when the member will be invited, if not yet


def coming_meetings(db: Session, contact: Contact, *, now: datetime) -> list[MeetingLine]:
    """The group's coming meetings with the member's invitation and answer, if any."""
    meetings = db.scalars(
        select(Meeting).where(Meeting.starts_at > now).order_by(Meeting.starts_at)
    ).all()
    invitations = {
        i.meeting_id: i
        for i in db.scalars(
            select(Invitation).where(
                Invitation.contact_id == contact.id,
                Invitation.meeting_id.in_([m.id for m in meetings]),
            )
        )
    }
    lines = []
    for meeting in meetings:
        invitation = invitations.get(meeting.id)
        invitations_on = None
        if invitation is None and meeting.status is MeetingStatus.SCHEDULED:
            invitations_on = max(now, mail_due_at(meeting, meeting.invite_days, settings()))
        lines.append(MeetingLine(meeting, invitation, invitations_on))
    return lines


def update_details(
    db: Session,
    contact: Contact,
    *,
    name: str,
    role: str,
    phone: str,
    language: Language,
    announcements: bool,
    now: datetime,
) -> None:
    """A member's own name, role, phone, language and choice of news."""
    before = {"name": contact.name, "role": contact.role, "phone": contact.phone}
    contact.name, contact.role, contact.phone = name, role, phone
    after = {"name": name, "role": role, "phone": phone}
    if after != before:
        audit.record(db, "contact.details", contact, at=now, actor=contact.email, **after)
    operations.set_preferences(
        db, contact, language=language, announcements=announcements, now=now
    )


def change_answer(
    db: Session, contact: Contact, meeting_public_id: str, answer: Rsvp, *, now: datetime
) -> bool:
    """The member's answer to one meeting, changed from their page; a note and a colleague
    named before are kept. False when there is no such open invitation."""
    invitation = db.scalars(
        select(Invitation)
        .join(Meeting)
        .where(Invitation.contact_id == contact.id, Meeting.public_id == meeting_public_id)
    ).first()
    if invitation is None or not can_answer(invitation.meeting, now):
        return False
    return record_answer(
        db,
        invitation,
        AnswerData(
            answer=answer,
            note=invitation.note,
            substitute_name=invitation.substitute_name,
            substitute_email=invitation.substitute_email,
        ),
        now=now,
    )


def add_colleague(db: Session, contact: Contact, *, name: str, email: str, now: datetime) -> None:
    """A colleague of the member's organisation, asked to confirm their own address first.

    The same rules as a further representative named on the join form: an address that is a
    contact already, or that stopped the group's mail, is left as it is and gets nothing; the
    member is told the same either way."""
    operations.name_colleague(
        db,
        contact.organisation,
        {"name": name, "email": email},
        contact.language,
        named_by=contact.name,
        actor=contact.email,
        now=now,
    )


@dataclass(frozen=True)
class Departure:
    """Who left, and whether their organisation is now inactive."""

    people: list[Contact]
    organisation_inactive: bool


def leave(db: Session, contact: Contact, *, whole_organisation: bool, now: datetime) -> Departure:
    """A member leaves the group, alone or with their whole organisation; the coordinators
    are told. When no one of the organisation stays, the organisation becomes inactive."""
    organisation = contact.organisation
    people = [c for c in organisation.contacts if c.status in ON_THE_LIST]
    leaving = people if whole_organisation else [c for c in people if c.id == contact.id]
    for person in leaving:
        person.status = ContactStatus.INACTIVE
        # Mail already queued for them is not sent: the sender checks this list just before.
        operations.suppress(db, person.email, reason="left", now=now)
        audit.record(db, "contact.left", person, at=now, actor=contact.email)
    staying = [c for c in organisation.contacts if c.status is ContactStatus.ACTIVE]
    inactive = not staying and organisation.status is OrganisationStatus.ACTIVE
    if inactive:
        organisation.status = OrganisationStatus.INACTIVE
        audit.record(db, "organisation.left", organisation, at=now, actor=contact.email)
    for coordinator, coordinator_language in coordinators.recipients(db):
        outbox.enqueue(
            db,
            names.MEMBER_LEFT,
            to=coordinator,
            lang=coordinator_language,
            dedupe_key=f"member-left:{contact.public_id}:{now.isoformat()}:{coordinator}",
            context={
                "organisation_name": organisation.name,
                "left_by": contact.name,
                "people": [{"name": p.name, "email": p.email} for p in leaving],
                "organisation_inactive": inactive,
                "staying": [{"name": c.name, "email": c.email} for c in staying],
                "reply_to": contact.email,
                "reply_to_name": contact.name,
            },
            now=now,
        )
    db.flush()
    return Departure(leaving, inactive)
