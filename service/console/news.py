"""/console/announcements: write in both languages, preview, test, send once; past sends."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from markupsafe import Markup

from forms.console import AnnouncementForm
from service.clock import now
from service.console import announcing
from service.console.blueprint import actor, bp
from service.db import db_session
from service.notices.announcements import AnnouncementError


def _draft(form: AnnouncementForm) -> announcing.Draft:
    return announcing.Draft(
        subject_en=form.subject_en.data or "",
        body_en=form.body_en.data or "",
        subject_km=form.subject_km.data or "",
        body_km=form.body_km.data or "",
    )


def _preview(form: AnnouncementForm, status: int = 200, problem: str = "") -> ResponseReturnValue:
    shared = _draft(form).shared()
    previews = {
        lang: {"subject": text["subject"], "body": Markup(text["body_html"])}  # sanitised
        for lang, text in shared.items()
    }
    page = render_template(
        "console/announcement_preview.html",
        form=form,
        previews=previews,
        has_khmer=bool(form.subject_km.data),
        recipients=announcing.recipient_count(db_session()),
        problem=problem,
    )
    return page, status


@bp.route("/console/announcements")
def announcements() -> ResponseReturnValue:
    form = AnnouncementForm()
    form.submission.data = announcing.new_submission_key()
    return render_template(
        "console/announcements.html",
        form=form,
        recipients=announcing.recipient_count(db_session()),
        past=announcing.past(db_session()),
    )


@bp.route("/console/announcements/preview", methods=["POST"])
def preview_announcement() -> ResponseReturnValue:
    """Both versions as members will see them; nothing is stored or sent."""
    form = AnnouncementForm()
    if not form.validate_on_submit():
        return render_template(
            "console/announcements.html",
            form=form,
            recipients=announcing.recipient_count(db_session()),
            past=[],
        ), 400
    if not form.submission.data:
        form.submission.data = announcing.new_submission_key()
    return _preview(form)


@bp.route("/console/announcements/test", methods=["POST"])
def test_announcement() -> ResponseReturnValue:
    form = AnnouncementForm()
    if not form.validate_on_submit():
        return _preview(form, 400)
    announcing.send_test(db_session(), _draft(form), to=actor(), now=now())
    db_session().commit()
    flash(_("A test of every language version is on its way to %(email)s.", email=actor()))
    return _preview(form)


@bp.route("/console/announcements/send", methods=["POST"])
def send_announcement() -> ResponseReturnValue:
    """Send to the members; the same filled-in form sent twice sends once."""
    form = AnnouncementForm()
    if not form.validate_on_submit() or not form.submission.data:
        return _preview(form, 400)
    try:
        sent = announcing.send_once(db_session(), _draft(form), key=form.submission.data, now=now())
    except AnnouncementError:
        db_session().rollback()
        problem = _(
            "This announcement was already sent to the members with these very words. "
            "Change the text to send something new."
        )
        return _preview(form, 409, problem)
    db_session().commit()
    flash(_("The announcement is on its way to the members."))
    return redirect(url_for(".announcements", _anchor=f"announcement-{sent}"), code=303)
