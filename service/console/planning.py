"""Meetings as the console plans and lists them: a rule from plain choices, its next dates, a
year's meetings, and a meeting's attendance sheet as a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.meetings.operations import MeetingError
from service.meetings.schedule import occurrences
from service.membership.roster import to_spreadsheet
from service.models import Attendance, Invitation, Meeting, MeetingSeries

PREVIEW_COUNT = 5


def rule_for(repeat: str, ordinal: str, weekday: str) -> str | None:
    """The RFC 5545 rule for the form's plain choices; None for a one-off meeting."""
    if repeat == "monthly_weekday":
        return f"FREQ=MONTHLY;BYDAY={int(ordinal)}{weekday}"
    if repeat == "weekly":
        return f"FREQ=WEEKLY;BYDAY={weekday}"
    return None


def local_moment(day: date, clock: time, zone: str) -> datetime:
    """A day and time in the group's zone, as UTC."""
    return datetime.combine(day, clock, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def end_of_day(day: date, zone: str) -> datetime:
    return local_moment(day, time.max, zone)


def next_dates(
    rule: str, first: datetime, zone: str, *, until: datetime | None = None
) -> list[datetime]:
    """The first PREVIEW_COUNT starts the rule gives from `first` on."""
    return occurrences(
        rule,
        first,
        zone,
        after=first,
        before=first + timedelta(days=400 * PREVIEW_COUNT),
        until=until,
    )[:PREVIEW_COUNT]


def check_first_date(rule: str, first: datetime, zone: str, until: datetime | None) -> None:
    """Refuse a first date the rule does not give: the series would silently start later."""
    dates = next_dates(rule, first, zone, until=until)
    if not dates or dates[0] != first:
        raise MeetingError("the first date is not a date of the rule")


def years(db: Session, zone: str, *, now: datetime) -> list[int]:
    """The years that have meetings, and this one."""
    tz = ZoneInfo(zone)
    starts = db.execute(select(func.min(Meeting.starts_at), func.max(Meeting.starts_at))).one()
    this = now.astimezone(tz).year
    first = starts[0].astimezone(tz).year if starts[0] else this
    last = starts[1].astimezone(tz).year if starts[1] else this
    return list(range(min(first, this), max(last, this) + 1))


def meetings_in(db: Session, year: int, zone: str) -> Sequence[Meeting]:
    """The meetings of `year` in the group's zone, in order."""
    begin = local_moment(date(year, 1, 1), time.min, zone)
    end = local_moment(date(year + 1, 1, 1), time.min, zone)
    return db.scalars(
        select(Meeting)
        .where(Meeting.starts_at >= begin, Meeting.starts_at < end)
        .order_by(Meeting.starts_at)
    ).all()


def all_series(db: Session) -> Sequence[MeetingSeries]:
    return db.scalars(select(MeetingSeries).order_by(MeetingSeries.first_starts_at)).all()


def attendance_of(db: Session, meeting: Meeting) -> dict[int, Attendance]:
    """What was marked for each invitation of `meeting`: invitation id -> attendance."""
    rows = db.scalars(
        select(Attendance)
        .join(Invitation, Attendance.invitation_id == Invitation.id)
        .where(Invitation.meeting_id == meeting.id)
    )
    return {row.invitation_id: row for row in rows}


SHEET_COLUMNS = (
    "organisation", "name", "email", "answer", "answered_via", "answered_at", "note",
    "substitute_name", "substitute_email", "attended",
)  # fmt: skip


def sheet_csv(invitations: Sequence[Invitation], attended: dict[int, Attendance]) -> bytes:
    """The attendance sheet for Excel: UTF-8 with a BOM, CRLF, no cell a formula."""
    buffer = io.StringIO(newline="")
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow(SHEET_COLUMNS)
    for invitation in invitations:
        marked = attended.get(invitation.id)
        row = (
            invitation.contact.organisation.name,
            invitation.contact.name,
            invitation.contact.email,
            invitation.answer.value,
            invitation.answered_via.value if invitation.answered_via else "",
            invitation.answered_at.isoformat() if invitation.answered_at else "",
            invitation.note,
            invitation.substitute_name,
            invitation.substitute_email,
            marked.status.value if marked else "",
        )
        writer.writerow([to_spreadsheet(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")
