"""Deciding a join request: the same page and the same rule on the emailed review link and in
the console. The first decision counts, wherever it was taken; a later one gets a 409 and
the page shows what was decided."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from forms import ReviewForm
from forms.review import SameNameReviewForm
from service.clock import now
from service.db import db_session
from service.membership import operations
from service.models import JoinRequest, RequestStatus


def review(
    join_request: JoinRequest, *, template: str, reviewer: str, done: ResponseReturnValue
) -> ResponseReturnValue:
    """Show `join_request` with `template`; on a valid POST decide it as `reviewer` and answer
    `done`."""
    db = db_session()
    pending = join_request.status is RequestStatus.PENDING
    same_name = operations.same_name_organisation(db, join_request) if pending else None
    form = SameNameReviewForm() if same_name is not None else ReviewForm()
    page = dict(
        form=form,
        request=join_request,
        submitted=join_request.submitted,
        members=operations.already_members(db, join_request),
        same_name=same_name,
    )
    if request.method != "POST":
        return render_template(template, **page)
    if not pending:
        return render_template(template, **page), 409
    if not form.validate_on_submit():
        return render_template(template, **page), 400
    if not operations.decide(
        db,
        join_request,
        approve=form.decision.data == "approve",
        reviewer=reviewer,
        note=form.note.data or "",
        now=now(),
        into=same_name if request.form.get("destination") == "existing" else None,
    ):  # another coordinator decided a moment ago: the page shows their decision
        return render_template(template, **page), 409
    db.commit()
    return done
