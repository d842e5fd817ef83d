"""The join form, address confirmation and the coordinator's review page."""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response as WerkzeugResponse

from forms import (
    ColleagueForm,
    ConfirmForm,
    JoinForm,
    LeaveForm,
    MeetingAnswerForm,
    MemberDetailsForm,
    PreferencesForm,
    StopMailForm,
    UnsubscribeForm,
)
from service.clock import now
from service.config import settings
from service.db import db_session
from service.extensions import limiter
from service.i18n import COOKIE as LANGUAGE_COOKIE
from service.i18n import COOKIE_MAX_AGE as LANGUAGE_COOKIE_MAX_AGE
from service.i18n import current_language
from service.meetings import operations as meeting_operations
from service.membership import links, member_page, operations, review_page
from service.membership.operations import Application
from service.models import (
    Contact,
    ContactStatus,
    JoinRequest,
    Language,
    RequestStatus,
    Rsvp,
    TokenPurpose,
)
from service.tokens import Lookup

bp = Blueprint("membership", __name__)


def _join_limit() -> str:
    return settings().join_rate_limit


@bp.route("/")
def home() -> ResponseReturnValue:
    # Only the language goes on: other query arguments would reach url_for as its own
    # (endpoint, _external, _scheme...).
    return redirect(url_for(".join", lang=request.args.get("lang")))


@bp.route("/join", methods=["GET", "POST"])
@limiter.limit(_join_limit, methods=["POST"])
def join() -> ResponseReturnValue:
    if request.method == "GET":
        return _empty_join_form()
    form = JoinForm()
    if form.is_spam:
        return render_template(
            "error.html",
            code=400,
            message=_(
                "Your submission could not be accepted. If you are a person, leave the last "
                "field empty and send the form again."
            ),
        ), 400
    if not form.validate():
        return render_template("membership/join.html", form=form), 400
    operations.submit_join_request(
        db_session(),
        Application(
            organisation_name=form.organisation_name.data,
            kind=form.kind.data,
            website=form.website.data or "",
            represented_in_cambodia=form.represented_in_cambodia.data == "yes",
            cambodia_location=form.cambodia_location.data or "",
            name=form.name.data,
            role=form.role.data,
            email=form.email.data,
            phone=form.phone.data or "",
            language=form.language.data,
            work_summary=form.work_summary.data,
            representatives=form.further_representatives(),
        ),
        now=now(),
    )
    db_session().commit()
    return redirect(url_for(".join_sent"))


# The empty join form by (language, address): the busiest public page is the same for every
# visitor but for the form's token, which is put in per visitor.
_empty_join_forms: dict[tuple[str, str], str] = {}
_TOKEN_HOLE = "wg-form-token-hole"


def _empty_join_form() -> str:
    token = generate_csrf()  # this visitor's, kept in their session as FlaskForm would
    key = (current_language(), request.full_path)
    page = _empty_join_forms.get(key)
    if page is None:
        form = JoinForm()
        form.language.data = current_language()
        page = render_template("membership/join.html", form=form).replace(token, _TOKEN_HOLE)
        if set(request.args) <= {"lang"}:  # not one page per made-up query string
            _empty_join_forms[key] = page
    return page.replace(_TOKEN_HOLE, token)


@bp.route("/join/sent")
def join_sent() -> ResponseReturnValue:
    return render_template("membership/join_sent.html")


def _in_this_language(endpoint: str) -> WerkzeugResponse:
    """A redirect to a page with no token (which cannot tell whose language to speak) that
    keeps this page's language: the recipient's, or the one they switched to."""
    response = redirect(url_for(endpoint))
    response.set_cookie(
        LANGUAGE_COOKIE,
        current_language(),
        max_age=LANGUAGE_COOKIE_MAX_AGE,
        samesite="Lax",
        httponly=True,
    )
    return response


def _confirm_lookup(token: str) -> tuple[Lookup, JoinRequest]:
    lookup, join_request = operations.find_by_token(
        db_session(), TokenPurpose.CONFIRM, token, now=now()
    )
    if lookup.token is None or join_request is None:
        abort(404)
    g.language_hint = join_request.language.value  # the language the applicant chose
    return lookup, join_request


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> ResponseReturnValue:
    lookup, join_request = _confirm_lookup(token)
    form = ConfirmForm()
    if lookup.used or join_request.status is not RequestStatus.UNCONFIRMED:
        return render_template("membership/confirm_used.html"), 410
    if lookup.expired:
        resend = url_for(".resend_confirmation", token=token)
        return render_template("membership/confirm_expired.html", form=form, resend_url=resend), 410
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("membership/confirm.html", form=form, request=join_request), 400
        if operations.confirm_address(db_session(), token, now=now()) is None:
            return render_template("membership/confirm_used.html"), 410  # a press just before
        db_session().commit()
        return _in_this_language(".confirmed")
    return render_template("membership/confirm.html", form=form, request=join_request)


@bp.route("/confirm/<token>/resend", methods=["POST"])
@limiter.limit(_join_limit)
def resend_confirmation(token: str) -> ResponseReturnValue:
    _confirm_lookup(token)  # 404 for a link that never was
    form = ConfirmForm()
    if not form.validate_on_submit():
        resend = url_for(".resend_confirmation", token=token)
        return render_template("membership/confirm_expired.html", form=form, resend_url=resend), 400
    if not operations.resend_confirmation(db_session(), token, now=now()):
        return render_template("membership/confirm_used.html"), 410
    db_session().commit()
    return _in_this_language(".join_sent")


@bp.route("/confirmed")
def confirmed() -> ResponseReturnValue:
    return render_template("membership/confirmed.html")


def _representative_lookup(token: str) -> tuple[Lookup, Contact]:
    lookup, contact = operations.find_representative_link(db_session(), token, now=now())
    if lookup.token is None or contact is None:
        abort(404)
    g.language_hint = contact.language.value
    return lookup, contact


@bp.route("/representative/<token>", methods=["GET", "POST"])
def confirm_representative(token: str) -> ResponseReturnValue:
    """A further representative named on a join form confirms their own address."""
    lookup, contact = _representative_lookup(token)
    form = ConfirmForm()
    if lookup.used or contact.status is not ContactStatus.UNCONFIRMED:
        return render_template("membership/confirm_used.html"), 410
    if lookup.expired:
        resend = url_for(".resend_representative_link", token=token)
        return render_template("membership/confirm_expired.html", form=form, resend_url=resend), 410
    page = dict(form=form, contact=contact)
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("membership/confirm_representative.html", **page), 400
        if operations.confirm_representative(db_session(), token, now=now()) is None:
            return render_template("membership/confirm_used.html"), 410
        db_session().commit()
        return _in_this_language(".representative_confirmed")
    return render_template("membership/confirm_representative.html", **page)


@bp.route("/representative/<token>/resend", methods=["POST"])
@limiter.limit(_join_limit)
def resend_representative_link(token: str) -> ResponseReturnValue:
    _representative_lookup(token)
    form = ConfirmForm()
    if not form.validate_on_submit():
        resend = url_for(".resend_representative_link", token=token)
        return render_template("membership/confirm_expired.html", form=form, resend_url=resend), 400
    if not operations.resend_representative_link(db_session(), token, now=now()):
        return render_template("membership/confirm_used.html"), 410
    db_session().commit()
    return _in_this_language(".join_sent")


@bp.route("/representative/confirmed")
def representative_confirmed() -> ResponseReturnValue:
    return render_template("membership/representative_confirmed.html")


@bp.route("/review/<token>", methods=["GET", "POST"])
def review(token: str) -> ResponseReturnValue:
    lookup, join_request = operations.find_by_token(
        db_session(), TokenPurpose.REVIEW, token, now=now()
    )
    if lookup.token is None or join_request is None:
        abort(404)
    g.language_hint = settings().coordinator_language
    if lookup.expired and join_request.status is RequestStatus.PENDING:
        abort(410)
    return review_page.review(
        join_request,
        template="membership/review.html",
        reviewer=lookup.token.holder,
        done=redirect(url_for(".review", token=token)),
    )


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> ResponseReturnValue:
    """The List-Unsubscribe target: RFC 8058 one-click POST, or a page with one button and
    the member's preferences."""
    recipient = operations.find_unsubscribe_link(db_session(), token, now=now())
    if recipient is None:
        abort(404)
    contact = recipient.contact
    if contact is not None:
        g.language_hint = contact.language.value
    if request.method == "POST" and request.form.get("List-Unsubscribe") == "One-Click":
        # A mailbox provider's one-click POST: no cookie, no CSRF token, no redirect.
        operations.stop_mail(db_session(), recipient, now=now(), via="one-click")
        db_session().commit()
        return Response("Unsubscribed.\n", mimetype="text/plain")
    form = UnsubscribeForm(prefix="stop")
    preferences = PreferencesForm(prefix="prefs")
    page = dict(form=form, preferences=preferences, contact=contact, address=recipient.email)
    if request.method == "POST" and "prefs-language" in request.form:
        if (
            contact is None
            or contact.status is not ContactStatus.ACTIVE
            or not preferences.validate_on_submit()
        ):
            return render_template("membership/unsubscribe.html", **page), 400
        operations.set_preferences(
            db_session(),
            contact,
            language=Language(preferences.language.data),
            announcements=preferences.announcements.data,
            now=now(),
        )
        db_session().commit()
        return redirect(url_for(".unsubscribe", token=token, saved=1))
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("membership/unsubscribe.html", **page), 400
        operations.stop_mail(db_session(), recipient, now=now(), via="page")
        db_session().commit()
    if contact is not None:
        preferences.language.data = contact.language.value
        preferences.announcements.data = contact.wants_announcements
    if contact is not None:
        done = contact.status is ContactStatus.UNSUBSCRIBED
    else:
        done = operations.is_suppressed(db_session(), recipient.email)
    page.update(done=done, saved=request.args.get("saved") == "1")
    return render_template("membership/unsubscribe.html", **page)


def _member_lookup(token: str) -> Contact:
    contact = member_page.find_member(db_session(), token, now=now())
    if contact is None:
        abort(404)
    g.language_hint = contact.language.value  # the member's language, unless ?lang= says
    return contact


def _member_page(
    token: str, contact: Contact, status: int = 200, **forms: object
) -> ResponseReturnValue:
    """The member page, with `forms` (one that failed, with its errors) in place of fresh ones."""
    details = forms.get("details")
    if not isinstance(details, MemberDetailsForm):
        details = MemberDetailsForm(prefix="details", formdata=None)
        details.name.data = contact.name
        details.role.data = contact.role
        details.phone.data = contact.phone
        details.language.data = contact.language.value
        details.announcements.data = contact.wants_announcements
    moment = now()
    meetings = member_page.coming_meetings(db_session(), contact, now=moment)
    answers = {}
    for line in meetings:
        if line.invitation is None:
            continue
        prefix = f"meeting-{line.meeting.public_id}"
        failed = forms.get("answer")
        if isinstance(failed, MeetingAnswerForm) and failed.answer.name == f"{prefix}-answer":
            answers[line.meeting.id] = failed
            continue
        form = MeetingAnswerForm(prefix=prefix, formdata=None)
        if line.invitation.answer is not Rsvp.NONE:
            form.answer.data = line.invitation.answer.value
        answers[line.meeting.id] = form
    page = dict(
        token=token,
        contact=contact,
        active=contact.status is ContactStatus.ACTIVE,
        details=details,
        colleague=forms.get("colleague") or ColleagueForm(prefix="colleague", formdata=None),
        leave=forms.get("leave") or LeaveForm(prefix="leave", formdata=None),
        stop=forms.get("stop") or StopMailForm(prefix="stop", formdata=None),
        meetings=meetings,
        answers=answers,
        can_answer=lambda meeting: meeting_operations.can_answer(meeting, moment),
        calendar=links.calendar_urls(token),
        done=request.args.get("done", ""),
    )
    return render_template("membership/member.html", **page), status


@bp.route("/member/<token>")
def member(token: str) -> ResponseReturnValue:
    """A member's own page: safe to fetch; each of its buttons posts to its own address."""
    contact = _member_lookup(token)
    return _member_page(token, contact)


def _back(token: str, done: str, section: str) -> ResponseReturnValue:
    lang = request.args.get("lang")
    return redirect(url_for(".member", token=token, done=done, lang=lang, _anchor=section))


@bp.route("/member/<token>/details", methods=["POST"])
def member_details(token: str) -> ResponseReturnValue:
    contact = _member_lookup(token)
    form = MemberDetailsForm(prefix="details")
    if contact.status is not ContactStatus.ACTIVE or not form.validate_on_submit():
        return _member_page(token, contact, 400, details=form)
    member_page.update_details(
        db_session(),
        contact,
        name=form.name.data,
        role=form.role.data or "",
        phone=form.phone.data or "",
        language=Language(form.language.data),
        announcements=form.announcements.data,
        now=now(),
    )
    db_session().commit()
    return _back(token, "details", "details")


@bp.route("/member/<token>/meetings/<meeting>", methods=["POST"])
def member_answer(token: str, meeting: str) -> ResponseReturnValue:
    contact = _member_lookup(token)
    form = MeetingAnswerForm(prefix=f"meeting-{meeting}")
    if contact.status is not ContactStatus.ACTIVE or not form.validate_on_submit():
        return _member_page(token, contact, 400, answer=form)
    changed = member_page.change_answer(
        db_session(), contact, meeting, Rsvp(form.answer.data), now=now()
    )
    if not changed:  # no such invitation, or the meeting has begun
        return _member_page(token, contact, 409)
    db_session().commit()
    return _back(token, "answer", "meetings")


@bp.route("/member/<token>/colleague", methods=["POST"])
@limiter.limit(_join_limit)
def member_colleague(token: str) -> ResponseReturnValue:
    contact = _member_lookup(token)
    form = ColleagueForm(prefix="colleague")
    if contact.status is not ContactStatus.ACTIVE or not form.validate_on_submit():
        return _member_page(token, contact, 400, colleague=form)
    member_page.add_colleague(
        db_session(), contact, name=form.name.data, email=form.email.data, now=now()
    )
    db_session().commit()
    return _back(token, "colleague", "colleague")


@bp.route("/member/<token>/leave", methods=["POST"])
def member_leave(token: str) -> ResponseReturnValue:
    contact = _member_lookup(token)
    form = LeaveForm(prefix="leave")
    if contact.status not in member_page.ON_THE_LIST or not form.validate_on_submit():
        return _member_page(token, contact, 400, leave=form)
    member_page.leave(
        db_session(), contact, whole_organisation=form.who.data == "organisation", now=now()
    )
    db_session().commit()
    return _back(token, "left", "main")


@bp.route("/member/<token>/stop", methods=["POST"])
def member_stop(token: str) -> ResponseReturnValue:
    contact = _member_lookup(token)
    form = StopMailForm(prefix="stop")
    if not form.validate_on_submit():
        return _member_page(token, contact, 400, stop=form)
    operations.unsubscribe(db_session(), contact, now=now(), via="member page")
    db_session().commit()
    return _back(token, "stopped", "main")
