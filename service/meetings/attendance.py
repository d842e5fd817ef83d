"""After a meeting: who actually came, its minutes published to the members, and the year's
answers and attendance in figures (per meeting and per organisation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service import audit
from service.db import insert_ignoring_duplicates
from service.meetings.operations import MeetingError
from service.models import (
    Attendance,
    AttendanceStatus,
    Contact,
    Invitation,
    Meeting,
    MeetingMinutes,
    MeetingStatus,
)
from service.notices.announcements import announce


def _held(meeting: Meeting, now: datetime) -> None:
    if meeting.status is MeetingStatus.CANCELLED:
        raise MeetingError("the meeting was cancelled")
    if meeting.starts_at > now:
        raise MeetingError("the meeting has not taken place yet")


def mark_attendance(
    db: Session,
    meeting: Meeting,
    marks: dict[int, AttendanceStatus],
    *,
    actor: str,
    now: datetime,
) -> int:
    """Record who came (invitation id -> status); marking again replaces the earlier mark."""
    _held(meeting, now)
    invited = {invitation.id for invitation in meeting.invitations}
    marked = 0
    for invitation_id, status in marks.items():
        if invitation_id not in invited:
            continue
        values = dict(invitation_id=invitation_id, status=status, marked_at=now, marked_by=actor)
        if not insert_ignoring_duplicates(db, Attendance, ("invitation_id",), values):
            row = db.scalars(
                select(Attendance).where(Attendance.invitation_id == invitation_id)
            ).one()
            row.status, row.marked_at, row.marked_by = status, now, actor
        marked += 1
    audit.record(db, "meeting.attendance_marked", meeting, at=now, actor=actor, marked=marked)
    db.flush()
    return marked


def minutes_of(db: Session, meeting: Meeting) -> MeetingMinutes | None:
    return db.scalar(select(MeetingMinutes).where(MeetingMinutes.meeting_id == meeting.id))


def publish_minutes(
    db: Session,
    meeting: Meeting,
    *,
    subjects: tuple[str, str],
    body_en: str,
    body_km: str,
    actor: str,
    now: datetime,
) -> MeetingMinutes:
    """Store the minutes and send them to the members as an announcement, once."""
    _held(meeting, now)
    if minutes_of(db, meeting) is not None:
        raise MeetingError("the minutes were published already")
    subject_en, subject_km = subjects
    report = announce(
        db,
        subject_en=subject_en,
        body_en=body_en,
        subject_km=subject_km if body_km else "",
        body_km=body_km,
        now=now,
    )
    minutes = MeetingMinutes(
        meeting_id=meeting.id,
        body_en=body_en,
        body_km=body_km,
        published_at=now,
        published_by=actor,
        announcement_id=report.announcement_id,
    )
    db.add(minutes)
    audit.record(db, "meeting.minutes_published", meeting, at=now, actor=actor)
    db.flush()
    return minutes


@dataclass
class MeetingFigures:
    meeting: Meeting
    answers: dict[str, int]
    came: int


@dataclass
class OrganisationFigures:
    name: str
    invited: int = 0  # meetings someone of theirs was invited to
    coming: int = 0  # meetings someone answered yes to
    came: int = 0  # meetings someone (or their colleague) came to


def year_figures(
    db: Session, meetings: Sequence[Meeting]
) -> tuple[list[MeetingFigures], list[OrganisationFigures]]:
    """Answers and attendance per meeting, and per organisation, over `meetings`."""
    held = [m for m in meetings if m.status is MeetingStatus.SCHEDULED]
    ids = [m.id for m in held]
    invitations = db.scalars(
        select(Invitation)
        .options(selectinload(Invitation.contact).selectinload(Contact.organisation))
        .where(Invitation.meeting_id.in_(ids))
    ).all()
    marks = {
        row.invitation_id: row.status
        for row in db.scalars(
            select(Attendance).where(Attendance.invitation_id.in_([i.id for i in invitations]))
        )
    }
    per_meeting = {
        m.id: MeetingFigures(m, {a: 0 for a in ("yes", "maybe", "no", "none")}, 0) for m in held
    }
    organisations: dict[str, dict[str, set[int]]] = {}
    for invitation in invitations:
        figures = per_meeting[invitation.meeting_id]
        figures.answers[invitation.answer.value] += 1
        came = marks.get(invitation.id) in (AttendanceStatus.PRESENT, AttendanceStatus.SUBSTITUTE)
        figures.came += came
        sets = organisations.setdefault(
            invitation.contact.organisation.name, {"invited": set(), "coming": set(), "came": set()}
        )
        sets["invited"].add(invitation.meeting_id)
        if invitation.answer.value == "yes":
            sets["coming"].add(invitation.meeting_id)
        if came:
            sets["came"].add(invitation.meeting_id)
    by_organisation = [
        OrganisationFigures(name, len(s["invited"]), len(s["coming"]), len(s["came"]))
        for name, s in sorted(organisations.items(), key=lambda item: item[0].casefold())
    ]
    return [per_meeting[m.id] for m in held], by_organisation
