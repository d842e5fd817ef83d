"""`wg series add | list | show | end` and `wg meetings add | list | show | cancel | reschedule`."""

from __future__ import annotations

import json
from datetime import datetime, time
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.cliutil import parse_moment
from service.clock import now
from service.config import settings
from service.db import session_scope
from service.meetings import operations
from service.meetings.operations import MeetingDetails, MeetingError
from service.meetings.schedule import RuleError, local_text
from service.models import Invitation, Meeting, MeetingSeries


def parse_days(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of days such as 7,2") from None


ONLINE_URL_LENGTH = 500  # what the column holds


def web_link(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--online-url as given when it is an http(s) link; otherwise one line and exit 2.

    The link is put in every invitation and calendar entry, so no other scheme (javascript:,
    data:, file:) may come in.
    """
    if not value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = urlsplit("")
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or any(char.isspace() or not char.isprintable() for char in value)
    ):
        problem = "must be an http:// or https:// link without spaces"
    elif len(value) > ONLINE_URL_LENGTH:
        problem = f"must be an http(s) link of at most {ONLINE_URL_LENGTH} characters"
    else:
        return value
    click.echo(f"wg: --online-url {problem}, not {value[:80]!r}", err=True)
    raise click.exceptions.Exit(2)


def meeting_options(command: Any) -> Any:
    """The options a one-off meeting and a series share."""
    for option in reversed(
        [
            click.option("--title", required=True, help="Title in English."),
            click.option("--title-km", default="", help="Title in Khmer."),
            click.option(
                "--starts-at",
                required=True,
                metavar="ISO",
                help="Start (first start of a series); without offset in WG_TIMEZONE.",
            ),
            click.option("--duration", default=120, show_default=True, type=int, help="Minutes."),
            click.option("--location", default="", help="Address of the place."),
            click.option(
                "--online-url", default="", callback=web_link, help="http(s) link to join online."
            ),
            click.option("--agenda", default="", help="Agenda in English."),
            click.option("--agenda-km", default="", help="Agenda in Khmer."),
            click.option("--invite-days", default=14, show_default=True, type=int),
            click.option(
                "--followup-days",
                default="7,2",
                show_default=True,
                help="Days before the meeting for follow-ups to those who have not answered.",
            ),
            click.option("--reminder-days", default=1, show_default=True, type=int),
        ]
    ):
        command = option(command)
    return command


def _details(options: dict[str, Any]) -> MeetingDetails:
    return MeetingDetails(
        title_en=options["title"],
        title_km=options["title_km"],
        starts_at=parse_moment(options["starts_at"]),
        duration_minutes=options["duration"],
        location=options["location"],
        online_url=options["online_url"],
        agenda_en=options["agenda"],
        agenda_km=options["agenda_km"],
        invite_days=options["invite_days"],
        followup_days=parse_days(options["followup_days"]),
        reminder_days=options["reminder_days"],
    )


series = AppGroup("series", help="Recurring meetings.")
meetings = AppGroup("meetings", help="Meetings and who answered.")


@series.command("add")
@meeting_options
@click.option("--rrule", required=True, help="RFC 5545 rule, e.g. FREQ=MONTHLY;BYDAY=2TH")
@click.option("--until", default=None, metavar="DATE", help="Last day of the series.")
def series_add(rrule: str, until: str | None, **options: Any) -> None:
    """Add a recurring meeting; its occurrences are made ahead of time by the scheduler."""
    end = None
    if until:
        end = parse_moment(
            datetime.combine(datetime.fromisoformat(until).date(), time.max).isoformat()
        )
    try:
        with session_scope() as db:
            added = operations.add_series(db, _details(options), rrule, until=end, now=now())
            dates = operations.coming_dates(added, now=now(), count=3)
            shown = ", ".join(local_text(d, added.timezone) for d in dates)
            click.echo(f"series {added.id} added; its first meetings: {shown}")
    except (MeetingError, RuleError) as exc:
        raise click.UsageError(str(exc)) from None


def _series_summary(db: Session, series_row: MeetingSeries, moment: datetime) -> dict[str, Any]:
    zone = series_row.timezone
    made = db.scalars(
        select(Meeting).where(Meeting.series_id == series_row.id).order_by(Meeting.starts_at)
    ).all()
    coming = operations.coming_dates(series_row, now=moment, count=5)
    return {
        "id": series_row.id,
        "title": series_row.title_en,
        "title_km": series_row.title_km,
        "rrule": series_row.rrule,
        "timezone": zone,
        "first_starts_at": local_text(series_row.first_starts_at, zone),
        "until": local_text(series_row.until_at, zone) if series_row.until_at else None,
        "ended": series_row.until_at is not None and series_row.until_at <= moment,
        "location": series_row.location,
        "online_url": series_row.online_url,
        "meetings": [
            {"id": m.id, "starts_at": local_text(m.starts_at, zone), "status": m.status.value}
            for m in made
        ],
        "coming": [local_text(d, zone) for d in coming],
    }


def _find_series(db: Session, reference: str) -> MeetingSeries:
    found = operations.find_series(db, reference)
    if found is None:
        raise click.UsageError(f"no series {reference} (see wg series list)")
    return found


@series.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def series_list(as_json: bool) -> None:
    """Every series: its rule, when it ends, and its next meeting."""
    moment = now()
    with session_scope() as db:
        rows = db.scalars(select(MeetingSeries).order_by(MeetingSeries.id)).all()
        listing = [_series_summary(db, row, moment) for row in rows]
    if as_json:
        click.echo(json.dumps(listing, indent=2, ensure_ascii=False))
        return
    for item in listing:
        state = "ended" if item["ended"] else f"next {item['coming'][0] if item['coming'] else '-'}"
        until = f", until {item['until']}" if item["until"] and not item["ended"] else ""
        click.echo(f"{item['id']:>4}  {item['title']}  {item['rrule']}  {state}{until}")


@series.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def series_show(reference: str, as_json: bool) -> None:
    """One series: its rule, the meetings it made, and the dates it will produce."""
    with session_scope() as db:
        shown = _series_summary(db, _find_series(db, reference), now())
    if as_json:
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    click.echo(f"series {shown['id']}: {shown['title']}")
    click.echo(f"  rule      {shown['rrule']} ({shown['timezone']})")
    click.echo(f"  first     {shown['first_starts_at']}")
    click.echo(f"  until     {shown['until'] or '-'}{' (ended)' if shown['ended'] else ''}")
    for meeting in shown["meetings"]:
        click.echo(f"  meeting {meeting['id']:>4}  {meeting['starts_at']}  {meeting['status']}")
    click.echo(f"  coming    {', '.join(shown['coming']) or '-'}")


@series.command("end")
@click.argument("reference")
@click.option(
    "--after", "after_text", default=None, metavar="DATE", help="Last day (default: now)."
)
@click.option("--reason", default="", help="Sent with the cancellation of meetings already made.")
@click.option("--reason-km", default="", help="The explanation in Khmer, for Khmer readers.")
def series_end(reference: str, after_text: str | None, reason: str, reason_km: str) -> None:
    """End a series: no meeting after DATE; meetings already made for later are cancelled."""
    moment = now()
    after = moment
    if after_text:
        try:
            day = datetime.fromisoformat(after_text).date()
        except ValueError:
            message = f"--after {after_text!r} is not a date such as 2027-06-30"
            raise click.UsageError(message) from None
        after = parse_moment(datetime.combine(day, time.max).isoformat())
    try:
        with session_scope() as db:
            found = _find_series(db, reference)
            cancelled = operations.end_series(
                db, found, after=after, now=moment, reason=reason, reason_km=reason_km
            )
            click.echo(
                f"series {found.id} ends {local_text(after, found.timezone)}; "
                f"{cancelled} meeting(s) already made for later cancelled"
            )
    except MeetingError as exc:
        raise click.UsageError(str(exc)) from None


@meetings.command("add")
@meeting_options
def meetings_add(**options: Any) -> None:
    """Add a one-off meeting."""
    try:
        with session_scope() as db:
            meeting = operations.add_meeting(db, _details(options), now=now())
            click.echo(f"meeting {meeting.id} added")
    except MeetingError as exc:
        raise click.UsageError(str(exc)) from None


def _summary(meeting: Meeting) -> dict[str, Any]:
    answers = {"yes": 0, "no": 0, "maybe": 0, "none": 0}
    for invitation in meeting.invitations:
        answers[invitation.answer.value] += 1
    return {
        "id": meeting.id,
        "public_id": meeting.public_id,
        "title": meeting.title_en,
        "title_km": meeting.title_km,
        "starts_at": meeting.starts_at.isoformat(),
        "starts_at_local": meeting.starts_at.astimezone(ZoneInfo(meeting.timezone)).isoformat(),
        "timezone": meeting.timezone,
        "duration_minutes": meeting.duration_minutes,
        "location": meeting.location,
        "online_url": meeting.online_url,
        "status": meeting.status.value,
        "sequence": meeting.sequence,
        "series_id": meeting.series_id,
        "answers": answers,
    }


@meetings.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--all", "show_all", is_flag=True, help="Past meetings too.")
def meetings_list(as_json: bool, show_all: bool) -> None:
    """Upcoming meetings with their answers."""
    query = select(Meeting).options(selectinload(Meeting.invitations)).order_by(Meeting.starts_at)
    if not show_all:
        query = query.where(Meeting.starts_at > now())
    with session_scope() as db:
        listing = [_summary(m) for m in db.scalars(query)]
    if as_json:
        click.echo(json.dumps(listing, indent=2, ensure_ascii=False))
        return
    zone = ZoneInfo(settings().timezone)
    for m in listing:
        local = datetime.fromisoformat(m["starts_at"]).astimezone(zone)
        a = m["answers"]
        click.echo(
            f"{m['id']:>4}  {local:%Y-%m-%d %H:%M}  {m['status']:<9}  {m['title']}  "
            f"yes {a['yes']} no {a['no']} maybe {a['maybe']} unanswered {a['none']}"
        )


@meetings.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def meetings_show(reference: str, as_json: bool) -> None:
    """One meeting with every invitee and their answer."""
    with session_scope() as db:
        meeting = operations.find_meeting(db, reference)
        if meeting is None:
            raise click.UsageError(f"no meeting {reference}")
        shown = _summary(meeting)
        invitations = db.scalars(
            select(Invitation)
            .options(selectinload(Invitation.contact))
            .where(Invitation.meeting_id == meeting.id)
            .order_by(Invitation.id)
        )
        shown["invitees"] = [
            {
                "name": i.contact.name,
                "email": i.contact.email,
                "organisation": i.contact.organisation.name,
                "language": i.contact.language.value,
                "answer": i.answer.value,
                "answered_at": i.answered_at.isoformat() if i.answered_at else None,
                "answered_via": i.answered_via.value if i.answered_via else None,
                "note": i.note,
                "substitute": {"name": i.substitute_name, "email": i.substitute_email}
                if i.substitute_email
                else None,
            }
            for i in invitations
        ]
    if as_json:
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    click.echo(
        f"{shown['title']} ({shown['status']}) {shown['starts_at_local'][:16].replace('T', ' ')} "
        f"{shown['timezone']}"
    )
    for person in shown["invitees"]:
        extra = f" -> {person['substitute']['name']}" if person["substitute"] else ""
        click.echo(
            f"  {person['answer']:<6} {person['name']} <{person['email']}> "
            f"{person['organisation']}{extra}"
        )


@meetings.command("cancel")
@click.argument("reference")
@click.option("--reason", default="", help="A short explanation sent to everyone invited.")
@click.option("--reason-km", default="", help="The explanation in Khmer, for Khmer readers.")
def meetings_cancel(reference: str, reason: str, reason_km: str) -> None:
    """Cancel a meeting: everyone invited is told, follow-ups and reminders stop."""
    try:
        with session_scope() as db:
            meeting = operations.find_meeting(db, reference)
            if meeting is None:
                raise MeetingError(f"no meeting {reference}")
            told = operations.cancel(db, meeting, now=now(), reason=reason, reason_km=reason_km)
            click.echo(f"meeting {meeting.id} cancelled; {told} invitees will be told")
    except MeetingError as exc:
        raise click.UsageError(str(exc)) from None


@meetings.command("reschedule")
@click.argument("reference")
@click.option("--starts-at", default=None, metavar="ISO")
@click.option("--location", default=None)
@click.option("--online-url", default=None, callback=web_link, help="http(s) link.")
@click.option("--reason", default="", help="A short explanation sent with the update.")
@click.option("--reason-km", default="", help="The explanation in Khmer, for Khmer readers.")
def meetings_reschedule(
    reference: str,
    starts_at: str | None,
    location: str | None,
    online_url: str | None,
    reason: str,
    reason_km: str,
) -> None:
    """Move a meeting or change its place; everyone invited gets the update."""
    try:
        with session_scope() as db:
            meeting = operations.find_meeting(db, reference)
            if meeting is None:
                raise MeetingError(f"no meeting {reference}")
            told = operations.reschedule(
                db,
                meeting,
                now=now(),
                location=location,
                online_url=online_url,
                starts_at=parse_moment(starts_at) if starts_at else None,
                reason=reason,
                reason_km=reason_km,
            )
            click.echo(f"meeting {meeting.id} changed; {told} invitees will get the update")
    except MeetingError as exc:
        raise click.UsageError(str(exc)) from None
