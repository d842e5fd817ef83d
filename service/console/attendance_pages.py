"""/console/attendance: the year's answers and attendance, as SVG charts and as tables; and,
after a meeting, marking who came and publishing its minutes."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _

from forms.console import MinutesForm
from service.clock import now
from service.config import settings
from service.console import charts, planning
from service.console.blueprint import actor, bp, record
from service.db import db_session
from service.meetings import attendance
from service.meetings.operations import MeetingError
from service.models import AttendanceStatus, Meeting
from service.notices.announcements import AnnouncementError


@bp.route("/console/attendance")
def attendance_year() -> ResponseReturnValue:
    db, moment, zone = db_session(), now(), settings().timezone
    years = planning.years(db, zone, now=moment)
    asked = request.args.get("year", "")
    this = moment.astimezone(ZoneInfo(zone)).year
    year = int(asked) if asked.isdigit() and int(asked) in years else this
    held = [m for m in planning.meetings_in(db, year, zone) if m.starts_at <= moment]
    meetings, organisations = attendance.year_figures(db, held)
    day = "%d/%m"
    meeting_chart = charts.stacked(
        [
            (
                f.meeting.starts_at.astimezone(ZoneInfo(zone)).strftime(day),
                [(kind, f.answers[kind]) for kind in ("yes", "maybe", "no", "none")],
                [("came", f.came)],
            )
            for f in meetings
        ]
    )
    organisation_chart = charts.stacked(
        [(f.name[:28], [("yes", f.coming)], [("came", f.came)]) for f in organisations]
    )
    return render_template(
        "console/attendance.html",
        year=year,
        years=years,
        meetings=meetings,
        organisations=organisations,
        meeting_chart=meeting_chart,
        organisation_chart=organisation_chart,
    )


STATUSES = {status.value: status for status in AttendanceStatus}


@bp.route("/console/meetings/<meeting_id>/attended", methods=["POST"])
def mark_attended(meeting_id: str) -> ResponseReturnValue:
    """Who came: one choice per invitee, named `came-<invitation id>`."""
    found = record(Meeting, meeting_id)
    marks = {
        int(key.removeprefix("came-")): STATUSES[value]
        for key, value in request.form.items()
        if key.startswith("came-") and key[5:].isdigit() and value in STATUSES
    }
    try:
        attendance.mark_attendance(db_session(), found, marks, actor=actor(), now=now())
    except MeetingError:
        db_session().rollback()
        flash(_("Attendance can be marked once the meeting has taken place."))
        return redirect(url_for(".meeting", meeting_id=found.id), code=303)
    db_session().commit()
    flash(_("Saved: who came."))
    return redirect(url_for(".meeting", meeting_id=found.id), code=303)


@bp.route("/console/meetings/<meeting_id>/minutes", methods=["POST"])
def publish_minutes(meeting_id: str) -> ResponseReturnValue:
    found = record(Meeting, meeting_id)
    form = MinutesForm()
    if not form.validate_on_submit():
        flash(_("Write the minutes in English before publishing them."))
        return redirect(url_for(".meeting", meeting_id=found.id), code=303)
    subjects = []
    for lang in ("en", "km"):
        with force_locale(lang):
            title = found.title_km if lang == "km" and found.title_km else found.title_en
            subjects.append(_("Minutes: %(title)s", title=title))
    try:
        attendance.publish_minutes(
            db_session(),
            found,
            subjects=(subjects[0], subjects[1]),
            body_en=form.body_en.data,
            body_km=form.body_km.data or "",
            actor=actor(),
            now=now(),
        )
    except (MeetingError, AnnouncementError):
        db_session().rollback()
        flash(_("The minutes can be published once, after the meeting."))
        return redirect(url_for(".meeting", meeting_id=found.id), code=303)
    db_session().commit()
    flash(_("The minutes are on their way to the members."))
    return redirect(url_for(".meeting", meeting_id=found.id), code=303)
