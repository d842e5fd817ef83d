"""/console: what needs the coordinator today, and /console/requests: join requests."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from forms.console import ButtonForm
from service import outbox
from service.clock import now
from service.console import joining, tallies
from service.console.blueprint import actor, bp, record
from service.db import db_session
from service.membership import review_page
from service.models import JoinRequest, RequestStatus


@bp.route("/console")
def overview() -> ResponseReturnValue:
    db, moment = db_session(), now()
    meeting = tallies.next_meeting(db, now=moment)
    return render_template(
        "console/overview.html",
        tally=tallies.tally(db, meeting) if meeting else None,
        waiting=joining.waiting(db),
        unconfirmed=joining.unconfirmed(db),
        troubled=tallies.troubled_contacts(db),
        health=outbox.health(db, now=moment, error_limit=3),
        button=ButtonForm(),
    )


@bp.route("/console/requests")
def requests() -> ResponseReturnValue:
    db = db_session()
    return render_template(
        "console/requests.html",
        waiting=joining.waiting(db),
        unconfirmed=joining.unconfirmed(db),
        decided=joining.decided(db),
        button=ButtonForm(),
    )


def _join_request(request_id: str) -> JoinRequest:
    found = record(JoinRequest, request_id)
    if found.status is RequestStatus.EXPIRED:
        abort(404)
    return found


@bp.route("/console/requests/<request_id>", methods=["GET", "POST"])
def join_request(request_id: str) -> ResponseReturnValue:
    """One request; approve or decline it under the review link's rule: the first decision
    counts, wherever it was taken."""
    return review_page.review(
        _join_request(request_id),
        template="console/request.html",
        reviewer=actor(),
        done=redirect(url_for(".join_request", request_id=request_id), code=303),
    )


@bp.route("/console/requests/<request_id>/resend", methods=["POST"])
def resend_link(request_id: str) -> ResponseReturnValue:
    """Send an applicant who has not confirmed a fresh confirmation link."""
    found = _join_request(request_id)
    if joining.send_link_again(db_session(), found, actor=actor(), now=now()):
        db_session().commit()
        flash(_("A new link is on its way to %(email)s.", email=found.email))
    else:
        flash(
            _(
                "No link was sent: the request no longer waits for one, or %(email)s received "
                "its links for this hour. Try again later.",
                email=found.email,
            )
        )
    back = url_for(".requests") if request.form.get("back") == "requests" else url_for(".overview")
    return redirect(back, code=303)
