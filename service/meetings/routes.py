"""/rsvp/<token>: a member answers an invitation (GET shows the choice; only POST records it),
and the calendars: one invitation as a file, and a member's subscription feed."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy.orm import joinedload

from forms import RsvpForm
from service import tokens
from service.clock import now
from service.db import db_session
from service.i18n import current_language
from service.meetings import operations
from service.meetings.operations import AnswerData
from service.membership.member_page import find_feed_owner
from service.models import Invitation, Rsvp, TokenPurpose
from service.urls import external_url

bp = Blueprint("meetings", __name__)

ANSWERS = ("yes", "no", "maybe")


def _invitation_of(token: str, *, moment: datetime) -> tuple[tokens.Lookup, Invitation]:
    """The RSVP link's token and its invitation, with its meeting and member in the same
    query; 404 for a link that names none."""
    lookup = tokens.find(db_session(), TokenPurpose.RSVP, token, now=moment)
    invitation = None
    if lookup.token is not None:
        invitation = db_session().get(
            Invitation,
            lookup.token.subject_id,
            options=[joinedload(Invitation.meeting), joinedload(Invitation.contact)],
        )
    if invitation is None:
        abort(404)
    return lookup, invitation


@bp.route("/rsvp/<token>", methods=["GET", "POST"])
def rsvp(token: str) -> ResponseReturnValue:
    moment = now()
    lookup, invitation = _invitation_of(token, moment=moment)
    g.language_hint = invitation.contact.language.value
    meeting = invitation.meeting
    is_open = operations.can_answer(meeting, moment) and not lookup.expired
    form = RsvpForm()
    page = dict(
        form=form,
        invitation=invitation,
        meeting=meeting,
        is_open=is_open,
        details=operations.meeting_context(meeting, current_language()),
    )
    if request.method == "POST":
        if not is_open:
            return render_template("meetings/rsvp.html", **page), 410
        if not form.validate_on_submit():
            return render_template("meetings/rsvp.html", **page), 400
        try:
            operations.record_answer(
                db_session(),
                invitation,
                AnswerData(
                    answer=Rsvp(form.answer.data),
                    note=form.note.data or "",
                    substitute_name=form.substitute_name.data or "",
                    substitute_email=form.substitute_email.data or "",
                ),
                now=moment,
            )
        except operations.SuppressedSubstitute:
            form.substitute_email.errors = [
                _(
                    "This address does not receive mail from the working group: it unsubscribed "
                    "or its mail bounced. Name another colleague, or leave these fields empty."
                )
            ]
            return render_template("meetings/rsvp.html", **page), 400
        db_session().commit()
        return redirect(url_for(".rsvp", token=token, saved=1, lang=request.args.get("lang")))
    preselected = request.args.get("answer")
    if preselected is not None and preselected not in ANSWERS:
        page["message"] = _("The link asked for an answer that does not exist. Choose below.")
        return render_template("meetings/rsvp.html", **page), 400
    form.answer.data = preselected or (
        invitation.answer.value if invitation.answer is not Rsvp.NONE else None
    )
    form.note.data = invitation.note
    form.substitute_name.data = invitation.substitute_name
    form.substitute_email.data = invitation.substitute_email
    page["saved"] = request.args.get("saved") == "1"
    return render_template("meetings/rsvp.html", **page)


CALENDAR_TYPE = "text/calendar; charset=utf-8"


@bp.route("/rsvp/<token>/meeting.ics")
def rsvp_calendar(token: str) -> ResponseReturnValue:
    """The invitation as a file to add to a calendar (the same event as the emailed one)."""
    _lookup, invitation = _invitation_of(token, moment=now())
    rsvp_url = external_url("meetings.rsvp", token=token)
    body = operations.invitation_ics(invitation, rsvp_url=rsvp_url)
    return Response(
        body,
        headers={
            "Content-Type": CALENDAR_TYPE,
            "Content-Disposition": 'attachment; filename="meeting.ics"',
            "Cache-Control": "private, no-store",
        },
    )


@bp.route("/calendar/<token>.ics")
def calendar_feed(token: str) -> ResponseReturnValue:
    """A member's calendar feed: what a webcal:// subscription fetches, every few hours."""
    contact = find_feed_owner(db_session(), token, now=now())
    if contact is None:
        abort(404)
    body = operations.member_feed(db_session(), contact, now=now())
    return Response(
        body,
        headers={
            "Content-Type": CALENDAR_TYPE,
            "Content-Disposition": 'inline; filename="meetings.ics"',
            "Cache-Control": "private, max-age=300",
        },
    )
