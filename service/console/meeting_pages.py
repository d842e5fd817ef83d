"""/console/meetings: by year, a new meeting or series, one meeting's sheet, edit, cancel."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from markupsafe import Markup

from forms.console import (
    CancelMeetingForm,
    EditMeetingForm,
    EndSeriesForm,
    MinutesForm,
    NewMeetingForm,
    SeriesForm,
)
from service.clock import now
from service.config import settings
from service.console import planning, tallies
from service.console.blueprint import bp, record
from service.db import db_session
from service.meetings import attendance, editing, operations
from service.meetings.editing import MeetingEdit, edit_meeting
from service.meetings.operations import MeetingDetails, MeetingError
from service.meetings.schedule import RuleError
from service.models import Meeting, MeetingSeries, MeetingStatus
from service.notices.announcements import render_markdown


def _zone() -> str:
    return settings().timezone


@bp.route("/console/meetings")
def meetings() -> ResponseReturnValue:
    db, moment = db_session(), now()
    years = planning.years(db, _zone(), now=moment)
    asked = request.args.get("year", "")
    year = (
        int(asked)
        if asked.isdigit() and int(asked) in years
        else moment.astimezone(ZoneInfo(_zone())).year
    )
    return render_template(
        "console/meetings.html",
        year=year,
        years=years,
        meetings=planning.meetings_in(db, year, _zone()),
        series=planning.all_series(db),
        now=moment,
    )


def _details(form: NewMeetingForm | EditMeetingForm, starts_at: datetime) -> dict[str, object]:
    return dict(
        title_en=form.title_en.data,
        title_km=form.title_km.data or "",
        agenda_en=form.agenda_en.data or "",
        agenda_km=form.agenda_km.data or "",
        location=form.location.data or "",
        online_url=form.online_url.data or "",
        starts_at=starts_at,
    )


@bp.route("/console/meetings/new", methods=["GET", "POST"])
def new_meeting() -> ResponseReturnValue:
    """A one-off meeting or a series; "Show the dates" previews a series without storing it."""
    form = NewMeetingForm()
    page: dict[str, object] = dict(form=form, dates=[], problem="")
    if request.method == "GET":
        return render_template("console/meeting_new.html", **page)
    if not form.validate_on_submit():
        return render_template("console/meeting_new.html", **page), 400
    zone, moment = _zone(), now()
    first = planning.local_moment(form.day.data, form.time.data, zone)
    rule = planning.rule_for(form.repeat.data, form.ordinal.data, form.weekday.data)
    until = planning.end_of_day(form.until.data, zone) if form.until.data else None
    if rule:
        page["dates"] = planning.next_dates(rule, first, zone, until=until)
        try:
            planning.check_first_date(rule, first, zone, until)
        except MeetingError:
            page["problem"] = _(
                "The first day must be one the rule gives, or the series would start later. "
                "Choose one of the dates below as the first day."
            )
            return render_template("console/meeting_new.html", **page), 400
    if request.form.get("action") == "preview":
        return render_template("console/meeting_new.html", **page)
    details = MeetingDetails(duration_minutes=form.duration.data, **_details(form, first))  # type: ignore[arg-type]
    try:
        if rule:
            operations.add_series(db_session(), details, rule, until=until, now=moment)
        else:
            operations.add_meeting(db_session(), details, now=moment)
    except (MeetingError, RuleError):
        page["problem"] = _("The meeting would start in the past. Choose a later day or time.")
        return render_template("console/meeting_new.html", **page), 400
    db_session().commit()
    flash(_("The meeting is planned. Invitations go out by themselves."))
    year = first.astimezone(ZoneInfo(zone)).year
    return redirect(url_for(".meetings", year=year), code=303)


def _meeting(meeting_id: str) -> Meeting:
    return record(Meeting, meeting_id)


@bp.route("/console/meetings/<meeting_id>")
def meeting(meeting_id: str) -> ResponseReturnValue:
    """The attendance sheet: every invitee, their answer and how it came."""
    found = _meeting(meeting_id)
    db, moment = db_session(), now()
    minutes = attendance.minutes_of(db, found)
    return render_template(
        "console/meeting.html",
        meeting=found,
        tally=tallies.tally(db, found),
        attended=planning.attendance_of(db, found),
        changeable=found.status is MeetingStatus.SCHEDULED and found.starts_at > moment,
        held=found.status is MeetingStatus.SCHEDULED and found.starts_at <= moment,
        minutes=minutes,
        minutes_html={
            lang: Markup(render_markdown(text))  # sanitised
            for lang, text in (("en", minutes.body_en), ("km", minutes.body_km))
            if text
        }
        if minutes
        else {},
        minutes_form=MinutesForm(formdata=None),
    )


@bp.route("/console/meetings/<meeting_id>/attendance.csv")
def meeting_csv(meeting_id: str) -> Response:
    found = _meeting(meeting_id)
    db = db_session()
    data = planning.sheet_csv(tallies.invitations(db, found), planning.attendance_of(db, found))
    day = found.starts_at.astimezone(ZoneInfo(found.timezone)).date().isoformat()
    return Response(
        data,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="attendance-{day}.csv"'},
    )


@bp.route("/console/meetings/<meeting_id>/edit", methods=["GET", "POST"])
def edit(meeting_id: str) -> ResponseReturnValue:
    found = _meeting(meeting_id)
    form = EditMeetingForm()
    page: dict[str, object] = dict(form=form, meeting=found, problem="")
    if request.method == "GET":
        local = found.starts_at.astimezone(ZoneInfo(found.timezone))
        for name in ("title_en", "title_km", "agenda_en", "agenda_km", "location", "online_url"):
            getattr(form, name).data = getattr(found, name)
        form.day.data, form.time.data = local.date(), local.time().replace(tzinfo=None)
        return render_template("console/meeting_edit.html", **page)
    if not form.validate_on_submit():
        return render_template("console/meeting_edit.html", **page), 400
    starts_at = planning.local_moment(form.day.data, form.time.data, found.timezone)
    try:
        report = edit_meeting(
            db_session(),
            found,
            MeetingEdit(**_details(form, starts_at)),  # type: ignore[arg-type]
            notice=form.tell.data == "notice",
            now=now(),
        )
    except MeetingError as exc:
        db_session().rollback()
        page["problem"] = _problem(str(exc))
        return render_template("console/meeting_edit.html", **page), 400
    db_session().commit()
    if report.updated:
        flash(_("Saved. Everyone invited gets the calendar update."))
    elif report.noticed:
        flash(_("Saved. Everyone invited gets a short notice."))
    else:
        flash(_("Saved. No one was told."))
    return redirect(url_for(".meeting", meeting_id=found.id), code=303)


def _problem(reason: str) -> str:
    """The operation's reason, as the coordinator reads it."""
    if "nothing would change" in reason:
        return _("Nothing was changed.")
    if "past" in reason or "started" in reason:
        return _("The meeting has started or the new time is in the past: it cannot change.")
    if "cancelled" in reason:
        return _("The meeting is cancelled: it cannot change.")
    return _("The meeting could not be changed.")


@bp.route("/console/meetings/<meeting_id>/cancel", methods=["GET", "POST"])
def cancel(meeting_id: str) -> ResponseReturnValue:
    found = _meeting(meeting_id)
    form = CancelMeetingForm()
    page: dict[str, object] = dict(form=form, meeting=found, problem="")
    if request.method == "GET":
        return render_template("console/meeting_cancel.html", **page)
    if not form.validate_on_submit():
        return render_template("console/meeting_cancel.html", **page), 400
    try:
        told = operations.cancel(
            db_session(),
            found,
            now=now(),
            reason=form.reason_en.data,
            reason_km=form.reason_km.data or "",
        )
    except MeetingError as exc:
        db_session().rollback()
        page["problem"] = _problem(str(exc))
        return render_template("console/meeting_cancel.html", **page), 400
    db_session().commit()
    flash(_("The meeting is cancelled. %(count)s invitees are told.", count=told))
    return redirect(url_for(".meeting", meeting_id=found.id), code=303)


def _series_page(series: MeetingSeries, status: int = 200, **forms: object) -> ResponseReturnValue:
    form = forms.get("form") or SeriesForm(formdata=None, obj=series)
    page = dict(
        series=series,
        form=form,
        end_form=forms.get("end_form") or EndSeriesForm(formdata=None),
        dates=operations.coming_dates(series, now=now(), count=planning.PREVIEW_COUNT),
        problem=forms.get("problem", ""),
    )
    return render_template("console/series.html", **page), status


@bp.route("/console/series/<series_id>", methods=["GET", "POST"])
def series(series_id: str) -> ResponseReturnValue:
    """A series: its next dates; change what its meetings say, or end it."""
    found = record(MeetingSeries, series_id)
    if request.method == "GET":
        return _series_page(found)
    form = SeriesForm()
    if not form.validate_on_submit():
        return _series_page(found, 400, form=form)
    values = {name: getattr(form, name).data or "" for name in editing.SERIES_FIELDS}
    try:
        changed = editing.edit_series(db_session(), found, values, now=now())
    except MeetingError:
        db_session().rollback()
        return _series_page(
            record(MeetingSeries, series_id), 400, form=form, problem=_("Nothing was changed.")
        )
    db_session().commit()
    flash(
        _(
            "Saved for the meetings to come (%(count)s already planned and not yet invited). "
            "Change a meeting whose invitations went out on its own page.",
            count=changed,
        )
    )
    return redirect(url_for(".series", series_id=found.id), code=303)


@bp.route("/console/series/<series_id>/end", methods=["POST"])
def end_series(series_id: str) -> ResponseReturnValue:
    found = record(MeetingSeries, series_id)
    form = EndSeriesForm()
    if not form.validate_on_submit():
        return _series_page(found, 400, end_form=form)
    after = planning.end_of_day(form.last_day.data, found.timezone)
    try:
        cancelled = operations.end_series(
            db_session(),
            found,
            after=after,
            now=now(),
            reason=form.reason_en.data or "",
            reason_km=form.reason_km.data or "",
        )
    except MeetingError:
        db_session().rollback()
        problem = _("A series cannot end in the past. Choose today or a later day.")
        return _series_page(record(MeetingSeries, series_id), 400, end_form=form, problem=problem)
    db_session().commit()
    flash(_("The series ends. %(count)s meetings after it are cancelled.", count=cancelled))
    return redirect(url_for(".series", series_id=found.id), code=303)
