"""Meetings: series and occurrences, the mail schedule, changes, cancellations and answers.

The clock calls `materialise` and `enqueue_due`; both derive what to do from the database
alone, so running them twice, or in two processes at once, queues nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session, selectinload

from emails import names, new_message_id
from emails.calendar import FeedEvent, invitation_uid, publish_ics
from service import audit, outbox
from service.config import Settings, settings
from service.db import dialect_insert, insert_ignoring_duplicates
from service.meetings.mail import (
    Invitee,
    ends_at,
    event_description,
    meeting_context,
    send_to_members,
    send_to_substitute,
    topic,
)
from service.meetings.schedule import (
    due_at,
    first_dates,
    in_window,
    local_text,
    occurrences,
    parse_rule,
)
from service.membership.operations import (
    answer_members_who_used_the_join_form,
    is_suppressed,
)
from service.models import (
    AnswerChannel,
    Contact,
    ContactStatus,
    Invitation,
    Meeting,
    MeetingSeries,
    MeetingStatus,
    Organisation,
    OrganisationStatus,
    Rsvp,
    Token,
    TokenPurpose,
    new_public_id,
)


@dataclass(frozen=True)
class MeetingDetails:
    """What the coordinator sets for a meeting or a series."""

    title_en: str
    starts_at: datetime
    title_km: str = ""
    duration_minutes: int = 120
    location: str = ""
    online_url: str = ""
    agenda_en: str = ""
    agenda_km: str = ""
    invite_days: int = 14
    followup_days: tuple[int, ...] = (7, 2)
    reminder_days: int = 1

    def columns(self) -> dict[str, object]:
        values = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "starts_at"}
        values["followup_days"] = sorted(set(self.followup_days), reverse=True)
        return values


class MeetingError(ValueError):
    """A request about a meeting that cannot be carried out; the message says why."""


def _check(details: MeetingDetails) -> None:
    if not details.title_en.strip():
        raise MeetingError("a meeting needs a title")
    if not details.location and not details.online_url:
        raise MeetingError("a meeting needs a place (--location) or an online link (--online-url)")
    if not 15 <= details.duration_minutes <= 24 * 60:
        raise MeetingError("the duration is between 15 minutes and a day")
    if any(d < 0 for d in (details.invite_days, details.reminder_days, *details.followup_days)):
        raise MeetingError("days before the meeting cannot be negative")


def add_meeting(db: Session, details: MeetingDetails, *, now: datetime) -> Meeting:
    """A one-off meeting. Its invitations go out at the next tick when it is already close."""
    _check(details)
    if details.starts_at <= now:
        raise MeetingError("the meeting would start in the past")
    meeting = Meeting(
        **details.columns(),
        starts_at=details.starts_at,
        timezone=settings().timezone,
        status=MeetingStatus.SCHEDULED,
        created_at=now,
        updated_at=now,
    )
    db.add(meeting)
    db.flush()
    audit.record(db, "meeting.added", meeting, at=now, starts_at=meeting.starts_at.isoformat())
    return meeting


def add_series(
    db: Session, details: MeetingDetails, rule: str, *, until: datetime | None, now: datetime
) -> MeetingSeries:
    """A recurring meeting; its occurrences are made `WG_MEETING_HORIZON_DAYS` ahead."""
    _check(details)
    zone = settings().timezone
    parse_rule(rule, details.starts_at, zone)  # refuses a bad rule before anything is stored
    if until is not None and until < details.starts_at:
        raise MeetingError("the series would end before it starts")
    produced = first_dates(rule, details.starts_at, zone, 4)
    if not produced:
        start = local_text(details.starts_at, zone)
        raise MeetingError(f"the rule {rule} gives no date from {start} on")
    if produced[0] != details.starts_at:
        dates = ", ".join(local_text(moment, zone) for moment in produced[:3])
        raise MeetingError(
            f"{local_text(details.starts_at, zone)} is not a date of {rule}; "
            f"from then on it gives {dates}: start the series on one of those"
        )
    series = MeetingSeries(
        **details.columns(),
        rrule=rule.strip().removeprefix("RRULE:"),
        first_starts_at=details.starts_at,
        until_at=until,
        timezone=zone,
        created_at=now,
    )
    db.add(series)
    db.flush()
    audit.record(db, "series.added", series, at=now, rrule=series.rrule)
    materialise(db, now=now)
    return series


def materialise(db: Session, *, now: datetime) -> int:
    """Create the meetings of every series that start within the horizon; returns how many."""
    horizon = now + timedelta(days=settings().meeting_horizon_days)
    created = 0
    for series in db.scalars(select(MeetingSeries)):
        starts = occurrences(
            series.rrule,
            series.first_starts_at,
            series.timezone,
            after=max(now, series.first_starts_at),
            before=horizon,
            until=series.until_at,
        )
        if not starts:
            continue
        known = set(
            db.scalars(
                select(Meeting.occurrence_at).where(
                    Meeting.series_id == series.id, Meeting.occurrence_at.in_(starts)
                )
            )
        )
        for start in starts:
            if start in known:
                continue
            inserted = insert_ignoring_duplicates(
                db,
                Meeting,
                ("series_id", "occurrence_at"),
                dict(
                    public_id=new_public_id(),
                    series_id=series.id,
                    occurrence_at=start,
                    starts_at=start,
                    title_en=series.title_en,
                    title_km=series.title_km,
                    timezone=series.timezone,
                    duration_minutes=series.duration_minutes,
                    location=series.location,
                    online_url=series.online_url,
                    agenda_en=series.agenda_en,
                    agenda_km=series.agenda_km,
                    invite_days=series.invite_days,
                    followup_days=series.followup_days,
                    reminder_days=series.reminder_days,
                    sequence=0,
                    status=MeetingStatus.SCHEDULED,
                    created_at=now,
                    updated_at=now,
                ),
            )
            created += inserted
    return created


def end_series(
    db: Session,
    series: MeetingSeries,
    *,
    after: datetime,
    now: datetime,
    reason: str = "",
    reason_km: str = "",
) -> int:
    """No occurrence of `series` after `after`; its meetings already made for later are
    cancelled (everyone invited is told). Returns how many were cancelled."""
    if after < now:
        raise MeetingError("a series cannot end in the past")
    series.until_at = after if series.until_at is None else min(series.until_at, after)
    later = db.scalars(
        select(Meeting)
        .where(
            Meeting.series_id == series.id,
            Meeting.status == MeetingStatus.SCHEDULED,
            Meeting.starts_at > after,
        )
        .order_by(Meeting.starts_at)
    ).all()
    for meeting in later:
        cancel(db, meeting, now=now, reason=reason, reason_km=reason_km)
    audit.record(db, "series.ended", series, at=now, after=after.isoformat(), cancelled=len(later))
    db.flush()
    return len(later)


def coming_dates(series: MeetingSeries, *, now: datetime, count: int) -> list[datetime]:
    """The next `count` starts the series will produce after `now` (until it ends)."""
    start = max(now, series.first_starts_at)
    dates = occurrences(
        series.rrule,
        series.first_starts_at,
        series.timezone,
        after=start,
        before=start + timedelta(days=400 * count),
        until=series.until_at,
    )
    return dates[:count]


@dataclass
class DueReport:
    meetings_created: int = 0
    invited: int = 0
    followed_up: int = 0
    reminded: int = 0
    skipped: int = 0
    outside_window: bool = False
    join_answers: int = 0  # members who used the join form, pointed to their own page

    def summary(self) -> str:
        answers = f"; join answers {self.join_answers}" if self.join_answers else ""
        if self.outside_window:
            return f"outside the sending window: no meeting mail queued{answers}"
        return (
            f"meetings made {self.meetings_created}, invitations {self.invited}, "
            f"follow-ups {self.followed_up}, reminders {self.reminded}, skipped {self.skipped}"
            f"{answers}"
        )


def enqueue_due(db: Session, *, now: datetime) -> DueReport:
    """Queue every invitation, follow-up and reminder that is due at `now` (and, at any hour,
    the answer to members who used the join form, which the form itself leaves to the clock)."""
    config = settings()
    report = DueReport(meetings_created=materialise(db, now=now))
    report.join_answers = answer_members_who_used_the_join_form(db, now=now)
    if not in_window(now, config.timezone, config.window):
        report.outside_window = True
        return report
    upcoming = db.scalars(
        select(Meeting)
        .where(Meeting.status == MeetingStatus.SCHEDULED, Meeting.starts_at > now)
        .order_by(Meeting.starts_at)
    ).all()
    for meeting in upcoming:
        if now >= mail_due_at(meeting, meeting.invite_days, config):
            report.invited += _invite_new_members(db, meeting, now=now)
        _follow_up(db, meeting, now=now, config=config, report=report)
        if now >= mail_due_at(meeting, meeting.reminder_days, config):
            report.reminded += _remind(db, meeting, now=now, config=config)
    return report


def mail_due_at(meeting: Meeting, days: int, config: Settings) -> datetime:
    """When the mail `days` before `meeting` becomes due (the sending window's opening)."""
    return due_at(meeting.starts_at, days, meeting.timezone, config.window)


def _active_contacts_not_invited(db: Session, meeting: Meeting) -> Sequence[Contact]:
    return db.scalars(
        select(Contact)
        .join(Organisation)
        .where(
            Contact.status == ContactStatus.ACTIVE,
            Organisation.status == OrganisationStatus.ACTIVE,
            ~exists().where(
                Invitation.meeting_id == meeting.id, Invitation.contact_id == Contact.id
            ),
        )
        .order_by(Contact.id)
    ).all()


def _invite_new_members(db: Session, meeting: Meeting, *, now: datetime) -> int:
    """Invite every active member not yet invited: all of them on invitation day, and a
    member approved later at the next tick. One insert for the invitations, one per kind of
    link, one for the messages, however many members there are."""
    contacts = {contact.id: contact for contact in _active_contacts_not_invited(db, meeting)}
    if not contacts:
        return 0
    # Each invitation knows the Message-ID of its mail (replies name it) from the start.
    domain = settings().mail_domain
    message_ids = {contact_id: new_message_id(domain) for contact_id in contacts}
    insert = dialect_insert(db.get_bind().dialect.name)
    created = db.execute(
        insert(Invitation.__table__)
        .on_conflict_do_nothing(index_elements=["meeting_id", "contact_id"])
        .returning(Invitation.__table__.c.id, Invitation.__table__.c.contact_id),
        [
            dict(
                meeting_id=meeting.id,
                contact_id=contact_id,
                answer=Rsvp.NONE,
                invited_at=now,
                note="",
                substitute_name="",
                substitute_email="",
                invitation_message_id=message_ids[contact_id],
                followup_stage=0,
                reminded_sequence=-1,
            )
            for contact_id in contacts
        ],
    ).all()  # only ours: another tick inviting the same members a moment ago keeps its own
    invitees = [
        Invitee(invitation_id, contacts[contact_id], message_id=message_ids[contact_id])
        for invitation_id, contact_id in sorted(created)
    ]
    send_to_members(
        db,
        names.MEETING_INVITATION,
        meeting,
        invitees,
        now=now,
        keys=[f"invite:{meeting.public_id}:{i.contact.public_id}" for i in invitees],
    )
    return len(invitees)


def _follow_up(
    db: Session, meeting: Meeting, *, now: datetime, config: Settings, report: DueReport
) -> None:
    """The latest follow-up that is due, to those who have not answered; earlier stages that
    were missed (downtime) are recorded as skipped rather than sent late."""
    stages = [
        (n, mail_due_at(meeting, days, config)) for n, days in enumerate(meeting.followup_days, 1)
    ]
    due = [(n, moment) for n, moment in stages if now >= moment]
    if not due:
        return
    stage, stage_due = due[-1]
    waiting = db.scalars(
        select(Invitation)
        .options(selectinload(Invitation.contact))
        .where(
            Invitation.meeting_id == meeting.id,
            Invitation.answer == Rsvp.NONE,
            Invitation.followup_stage < stage,
        )
    ).all()
    due_now = []
    for invitation in waiting:
        if invitation.invited_at > stage_due:
            invitation.followup_stage = stage  # invited after this stage was due: no nagging
            continue
        for missed in range(invitation.followup_stage + 1, stage):
            outbox.enqueue(
                db,
                names.MEETING_FOLLOWUP,
                to=invitation.contact.email,
                lang=invitation.contact.language,
                context={},
                now=now,
                dedupe_key=_followup_key(meeting, invitation, missed),
                topic=topic(meeting),
                skipped_because="a later follow-up was due",
            )
            report.skipped += 1
        invitation.followup_stage = stage
        due_now.append(invitation)
    send_to_members(
        db,
        names.MEETING_FOLLOWUP,
        meeting,
        due_now,
        now=now,
        keys=[_followup_key(meeting, invitation, stage) for invitation in due_now],
    )
    report.followed_up += len(due_now)


def _followup_key(meeting: Meeting, invitation: Invitation, stage: int) -> str:
    return f"followup-{stage}:{meeting.public_id}:{invitation.contact.public_id}"


def _remind(db: Session, meeting: Meeting, *, now: datetime, config: Settings) -> int:
    """A reminder to those who said yes or maybe, and to every substitute named, whatever
    the member's own answer (a "No, but my colleague comes" is the usual case)."""
    reminder_due = mail_due_at(meeting, meeting.reminder_days, config)
    attending = db.scalars(
        select(Invitation)
        .options(selectinload(Invitation.contact))
        .where(
            Invitation.meeting_id == meeting.id,
            or_(Invitation.answer.in_([Rsvp.YES, Rsvp.MAYBE]), Invitation.substitute_email != ""),
            Invitation.reminded_sequence != meeting.sequence,
        )
    ).all()
    members, substitutes = [], []
    for invitation in attending:
        invitation.reminded_sequence = meeting.sequence
        if invitation.answered_at is not None and invitation.answered_at > reminder_due:
            continue  # they answered after reminder day: the answer page told them everything
        if invitation.answer in (Rsvp.YES, Rsvp.MAYBE):
            members.append(invitation)
        if invitation.substitute_email:
            substitutes.append(invitation)
    send_to_members(
        db,
        names.MEETING_REMINDER,
        meeting,
        members,
        now=now,
        keys=[
            f"reminder:{meeting.public_id}:{meeting.sequence}:{invitation.contact.public_id}"
            for invitation in members
        ],
    )
    for invitation in substitutes:
        send_to_substitute(
            db,
            names.MEETING_REMINDER,
            meeting,
            invitation,
            now=now,
            key=f"reminder-substitute:{meeting.public_id}:{meeting.sequence}:{invitation.id}",
        )
    return len({invitation.id for invitation in members + substitutes})


def _feed_event(meeting: Meeting, lang: str, *, uid: str, description: str) -> FeedEvent:
    details = meeting_context(meeting, lang)
    return FeedEvent(
        uid=uid,
        sequence=meeting.sequence,
        summary=str(details["title"]),
        description=description,
        starts_at=meeting.starts_at,
        ends_at=ends_at(meeting),
        timezone=meeting.timezone,
        modified_at=meeting.updated_at,
        location=meeting.location,
        online_url=meeting.online_url,
        cancelled=meeting.status is MeetingStatus.CANCELLED,
    )


FEED_PAST = timedelta(days=31)  # a feed keeps last month's meetings, so they stay in calendars


def member_feed(db: Session, contact: Contact, *, now: datetime) -> bytes:
    """A member's calendar feed: the group's meetings from a month ago on, in their language.

    A reschedule or a cancellation changes the event in place (same UID, higher SEQUENCE).
    Someone who no longer receives the group's mail gets an empty calendar, so subscribed
    calendars drop the meetings."""
    lang = contact.language.value
    config = settings()
    meetings: Sequence[Meeting] = []
    if contact.status is ContactStatus.ACTIVE:
        meetings = db.scalars(
            select(Meeting).where(Meeting.starts_at > now - FEED_PAST).order_by(Meeting.starts_at)
        ).all()
    events = [
        _feed_event(
            meeting,
            lang,
            # The UID of this member's emailed invitation: one event in their calendar.
            uid=invitation_uid(
                meeting.public_id, contact.id, secret=config.secret_key, domain=config.mail_domain
            ),
            description=event_description(meeting, lang),
        )
        for meeting in meetings
    ]
    return publish_ics(events, name=config.group_name_for(lang), zone=config.timezone)


def invitation_ics(invitation: Invitation, *, rsvp_url: str) -> bytes:
    """One invitation as a file to add to a calendar: the same UID as the invitation's event,
    so adding both leaves one entry that later changes update."""
    config = settings()
    meeting = invitation.meeting
    lang = invitation.contact.language.value
    uid = invitation_uid(
        meeting.public_id,
        invitation.contact_id,
        secret=config.secret_key,
        domain=config.mail_domain,
    )
    event = _feed_event(
        meeting, lang, uid=uid, description=event_description(meeting, lang, rsvp_url=rsvp_url)
    )
    return publish_ics([event], name=config.group_name_for(lang), zone=meeting.timezone)


def reschedule(
    db: Session,
    meeting: Meeting,
    *,
    now: datetime,
    starts_at: datetime | None = None,
    location: str | None = None,
    online_url: str | None = None,
    reason: str = "",
    reason_km: str = "",
) -> int:
    """Move a meeting or change its place; everyone invited gets one update, which keeps their
    answer. Mail about the old version still waiting is withdrawn, and when the reminder for
    the new time is already due, the update is that reminder: nobody gets two messages."""
    change = _move(meeting, now=now, starts_at=starts_at, location=location, online_url=online_url)
    meeting.sequence += 1
    meeting.updated_at = now
    invitation_ids = [i.id for i in meeting.invitations]
    if invitation_ids:  # links in earlier mail stay valid until the new end
        db.execute(
            update(Token)
            .where(Token.purpose == TokenPurpose.RSVP, Token.subject_id.in_(invitation_ids))
            .values(expires_at=ends_at(meeting))
        )
    audit.record(db, "meeting.rescheduled", meeting, at=now, reason=reason, **change)
    outbox.withdraw(
        db,
        topic(meeting),
        reason="the meeting changed; the update replaces it",
        keep=lambda key: key.startswith(("update", "substitute")),
    )
    if now >= mail_due_at(meeting, meeting.reminder_days, settings()):
        for invitation in meeting.invitations:
            invitation.reminded_sequence = meeting.sequence
    if reason or reason_km:
        change.update(reason=reason, reason_km=reason_km)
    invitations = meeting.invitations
    send_to_members(
        db,
        names.MEETING_INVITATION,
        meeting,
        invitations,
        now=now,
        change=change,
        keys=[
            f"update:{meeting.public_id}:{meeting.sequence}:{invitation.contact.public_id}"
            for invitation in invitations
        ],
    )
    for invitation in invitations:
        if invitation.substitute_email:
            send_to_substitute(
                db,
                names.MEETING_SUBSTITUTE,
                meeting,
                invitation,
                now=now,
                change=change,
                key=f"update-substitute:{meeting.public_id}:{meeting.sequence}:{invitation.id}",
            )
    db.flush()
    return len(meeting.invitations)


def _move(
    meeting: Meeting,
    *,
    now: datetime,
    starts_at: datetime | None,
    location: str | None,
    online_url: str | None,
) -> dict[str, str]:
    """Give `meeting` its new time and place; what it was before, for the notice. Refuses
    (MeetingError) a change that is too late, empty or leaves no place to meet."""
    if meeting.status is MeetingStatus.CANCELLED:
        raise MeetingError("the meeting is cancelled")
    if meeting.starts_at <= now:
        raise MeetingError("the meeting has already started")
    if starts_at is not None and starts_at <= now:
        raise MeetingError("the new time is in the past")
    change: dict[str, str] = {}
    if starts_at is not None and starts_at != meeting.starts_at:
        change["old_starts_at"] = meeting.starts_at.isoformat()
        meeting.starts_at = starts_at
    if location is not None and location != meeting.location:
        change["old_location"] = meeting.location
        meeting.location = location
    if online_url is not None and online_url != meeting.online_url:
        change["old_online_url"] = meeting.online_url
        meeting.online_url = online_url
    if not change:
        raise MeetingError("nothing would change")
    if not meeting.location and not meeting.online_url:
        raise MeetingError("a meeting needs a place or an online link")
    return change


def cancel(
    db: Session, meeting: Meeting, *, now: datetime, reason: str = "", reason_km: str = ""
) -> int:
    """Cancel a meeting: everyone invited gets a CANCEL; pending follow-ups and reminders stop."""
    if meeting.status is MeetingStatus.CANCELLED:
        raise MeetingError("the meeting is already cancelled")
    if meeting.starts_at <= now:
        raise MeetingError("the meeting has already started")
    meeting.status = MeetingStatus.CANCELLED
    meeting.sequence += 1
    meeting.updated_at = now
    withdrawn = outbox.withdraw(
        db,
        topic(meeting),
        reason="the meeting was cancelled",
        keep=lambda key: key.startswith("cancel"),
    )
    audit.record(
        db,
        "meeting.cancelled",
        meeting,
        at=now,
        reason=reason,
        reason_km=reason_km,
        withdrawn=withdrawn,
    )
    why = {"reason": reason, "reason_km": reason_km}
    invitations = meeting.invitations
    send_to_members(
        db,
        names.MEETING_CANCELLED,
        meeting,
        invitations,
        now=now,
        change=why,
        keys=[f"cancel:{meeting.public_id}:{i.contact.public_id}" for i in invitations],
    )
    for invitation in invitations:
        if invitation.substitute_email:  # they had the details when they were named
            send_to_substitute(
                db,
                names.MEETING_CANCELLED,
                meeting,
                invitation,
                now=now,
                key=f"cancel-substitute:{meeting.public_id}:{invitation.id}",
                change=why,
            )
    db.flush()
    return len(meeting.invitations)


@dataclass(frozen=True)
class AnswerData:
    answer: Rsvp
    note: str = ""
    substitute_name: str = ""
    substitute_email: str = ""
    via: AnswerChannel = AnswerChannel.LINK
    evidence: dict[str, str] = field(default_factory=dict)


class SuppressedSubstitute(MeetingError):
    """The substitute named is an address that unsubscribed or bounced."""


def can_answer(meeting: Meeting, now: datetime) -> bool:
    return meeting.status is MeetingStatus.SCHEDULED and now < meeting.starts_at


def record_answer(db: Session, invitation: Invitation, data: AnswerData, *, now: datetime) -> bool:
    """Record (or change) an invitee's answer until the meeting starts. False when too late.

    Raises SuppressedSubstitute, changing nothing, when a newly named substitute unsubscribed
    or bounced: naming someone must not bring back mail they stopped.
    """
    if not can_answer(invitation.meeting, now) or data.answer is Rsvp.NONE:
        return False
    substitute = data.substitute_email
    if substitute and substitute != invitation.substitute_email and is_suppressed(db, substitute):
        raise SuppressedSubstitute(f"{substitute} gets no mail from the working group")
    previous = invitation.answer
    newly_named = substitute and substitute != invitation.substitute_email
    invitation.answer = data.answer
    invitation.answered_at = now
    invitation.answered_via = data.via
    invitation.note = data.note
    invitation.substitute_name = data.substitute_name
    invitation.substitute_email = data.substitute_email
    audit.record(
        db,
        "rsvp.answered",
        invitation,
        at=now,
        actor=invitation.contact.email,
        answer=data.answer.value,
        previous=previous.value,
        via=data.via.value,
        substitute=data.substitute_email,
        **data.evidence,
    )
    if newly_named:
        send_to_substitute(
            db,
            names.MEETING_SUBSTITUTE,
            invitation.meeting,
            invitation,
            now=now,
            key=f"substitute:{invitation.meeting.public_id}:{invitation.id}:{substitute}",
        )
    db.flush()
    return True


def find_series(db: Session, reference: str) -> MeetingSeries | None:
    """A series by its number (as `wg series list` shows)."""
    return db.get(MeetingSeries, int(reference)) if reference.isdigit() else None


def find_meeting(db: Session, reference: str) -> Meeting | None:
    """A meeting by its number (as `wg meetings list` shows) or its public id."""
    if reference.isdigit():
        return db.get(Meeting, int(reference))
    return db.scalars(select(Meeting).where(Meeting.public_id == reference)).first()
