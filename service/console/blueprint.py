"""The console's blueprint: every page needs a signed-in coordinator, every POST a CSRF token,
and every audit event a console request writes names that coordinator as its actor."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import Blueprint, Response, abort, current_app, g, redirect, request, url_for
from flask_wtf.csrf import ValidationError, generate_csrf, validate_csrf
from sqlalchemy import event
from sqlalchemy.orm import Session

from service import i18n
from service.clock import now
from service.config import settings
from service.console import access
from service.db import db_session
from service.i18n import current_language
from service.models import AuditEvent, Coordinator, Meeting

bp = Blueprint("console", __name__)
ModelT = TypeVar("ModelT")

SESSION_COOKIE = "wg_console"
COOKIE_PATH = "/console"
# The pages a person who is not signed in may see: asking for a link, and using it.
OPEN_ENDPOINTS = frozenset(
    {"console.sign_in", "console.sign_in_sent", "console.sign_in_link", "console.confirm_address"}
)


@bp.before_request
def _require_a_coordinator() -> Response | None:
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    raw = request.cookies.get(SESSION_COOKIE, "")
    coordinator = access.signed_in(db_session(), raw, now=now()) if raw else None
    if coordinator is None:
        # 303: a POST without a session becomes a GET of the sign-in page.
        return redirect(url_for("console.sign_in"), code=303)  # type: ignore[return-value]
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            abort(400)
    g.coordinator = coordinator
    if i18n.COOKIE not in request.cookies:
        g.language_hint = coordinator.language.value  # until they switch language
    _sign_audit_events(db_session(), coordinator.email)
    return None


def _sign_audit_events(db: Session, actor: str) -> None:
    """Audit events this request writes without an actor get the coordinator's address."""

    def before_flush(session: Session, _context: object, _instances: object) -> None:
        for item in session.new:
            if isinstance(item, AuditEvent) and not item.actor:
                item.actor = actor

    event.listen(db, "before_flush", before_flush)


@bp.after_request
def _not_cached(response: Response) -> Response:
    # Member data must not stay in a shared computer's cache after signing out.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _console_globals() -> dict[str, Any]:
    return {
        "csrf_token": generate_csrf,
        "coordinator": g.get("coordinator"),
        "console_pages": current_app.view_functions.keys(),
        "meeting_title": meeting_title,
        "group_zone": settings().timezone,
    }


def meeting_title(meeting: Meeting) -> str:
    """A meeting's title in the page's language (English when there is no Khmer one)."""
    if current_language() == "km" and meeting.title_km:
        return meeting.title_km
    return meeting.title_en


def coordinator() -> Coordinator:
    """The signed-in coordinator of this request."""
    return g.coordinator


def actor() -> str:
    """The signed-in coordinator's address: who did what this request does."""
    return coordinator().email


def record(model: type[ModelT], number: str) -> ModelT:
    """The row of `model` numbered by a path part, or 404 (path parts are text, not trusted)."""
    if not number.isdigit() or len(number) > 12:
        abort(404)
    found = db_session().get(model, int(number))
    if found is None:
        abort(404)
    return found
