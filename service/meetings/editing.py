"""Changing one meeting from the console: its texts in both languages, its time and place.

A change of time or place goes through operations.reschedule (everyone invited gets the
calendar update, with a higher SEQUENCE); a corrected title or agenda sends a short notice, or
nothing, as the coordinator chooses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from emails import names
from service import audit, outbox
from service.meetings.operations import MeetingError, meeting_context, reschedule
from service.membership.operations import unsubscribe_links
from service.models import Invitation, Meeting, MeetingSeries, MeetingStatus

TEXTS = ("title_en", "title_km", "agenda_en", "agenda_km")


@dataclass(frozen=True)
class MeetingEdit:
    """A meeting as the coordinator wants it now."""

    title_en: str
    title_km: str
    agenda_en: str
    agenda_km: str
    location: str
    online_url: str
    starts_at: datetime


@dataclass(frozen=True)
class EditReport:
    updated: int  # calendar updates queued (time or place changed)
    noticed: int  # short notices queued (only the texts changed)


def edit_meeting(
    db: Session, meeting: Meeting, edit: MeetingEdit, *, notice: bool, now: datetime
) -> EditReport:
    """Apply `edit` to a meeting that has not started. Raises MeetingError when nothing changes
    or the meeting cannot change any more."""
    if meeting.status is MeetingStatus.CANCELLED:
        raise MeetingError("the meeting is cancelled")
    if meeting.starts_at <= now:
        raise MeetingError("the meeting has already started")
    corrected = [name for name in TEXTS if getattr(edit, name) != getattr(meeting, name)]
    for name in corrected:
        setattr(meeting, name, getattr(edit, name))
    moved = (edit.starts_at, edit.location, edit.online_url) != (
        meeting.starts_at,
        meeting.location,
        meeting.online_url,
    )
    if corrected:
        meeting.updated_at = now
        audit.record(db, "meeting.corrected", meeting, at=now, fields=corrected)
    if moved:  # the update carries the corrected texts too
        updated = reschedule(
            db,
            meeting,
            now=now,
            starts_at=edit.starts_at if edit.starts_at != meeting.starts_at else None,
            location=edit.location,
            online_url=edit.online_url,
        )
        return EditReport(updated=updated, noticed=0)
    if not corrected:
        raise MeetingError("nothing would change")
    noticed = _send_notices(db, meeting, now=now) if notice else 0
    db.flush()
    return EditReport(updated=0, noticed=noticed)


def _send_notices(db: Session, meeting: Meeting, *, now: datetime) -> int:
    """A short notice of the corrected texts to everyone invited, in their language."""
    for invitation in meeting.invitations:
        contact = invitation.contact
        outbox.enqueue(
            db,
            names.MEETING_CORRECTED,
            to=contact.email,
            to_name=contact.name,
            lang=contact.language,
            dedupe_key=f"corrected:{meeting.public_id}:{now.isoformat()}:{contact.public_id}",
            context={
                "meeting": meeting_context(meeting, contact.language.value),
                "answer": invitation.answer.value,
                "list_unsubscribe": unsubscribe_links(db, contact, now=now),
            },
            now=now,
            not_after=meeting.starts_at,
            list_mail=True,
            topic=f"meeting:{meeting.id}",
        )
    return len(meeting.invitations)


SERIES_FIELDS = ("title_en", "title_km", "agenda_en", "agenda_km", "location", "online_url")


def edit_series(
    db: Session, series: MeetingSeries, values: dict[str, str], *, now: datetime
) -> int:
    """Change what a series' meetings say and where they are, for the meetings it makes from
    now on and those made but not yet invited; returns how many made meetings changed.

    Meetings whose invitations went out keep their details: change those one by one, so their
    invitees get the update.
    """
    changed = [name for name in SERIES_FIELDS if getattr(series, name) != values[name]]
    if not changed:
        raise MeetingError("nothing would change")
    if not values["location"] and not values["online_url"]:
        raise MeetingError("a meeting needs a place or an online link")
    for name in changed:
        setattr(series, name, values[name])
    quiet = db.scalars(
        select(Meeting).where(
            Meeting.series_id == series.id,
            Meeting.status == MeetingStatus.SCHEDULED,
            Meeting.starts_at > now,
            ~exists().where(Invitation.meeting_id == Meeting.id),
        )
    ).all()
    for meeting in quiet:
        for name in changed:
            setattr(meeting, name, values[name])
        meeting.updated_at = now
    audit.record(db, "series.edited", series, at=now, fields=changed, meetings=len(quiet))
    db.flush()
    return len(quiet)
