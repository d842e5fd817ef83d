"""The web side of the app: request-scoped sessions, error pages, security headers, blueprints."""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException, InternalServerError

from emails.compose import format_when
from service.config import settings
from service.db import UNAVAILABLE, unavailable_reason
from service.i18n import current_language

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # Links carry tokens in their path: never pass them on to another site.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


# A path segment long enough to be a link's secret (tokens are 22 or more URL-safe characters).
_SECRET_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_-]{16,}")


def redact_path(path: str) -> str:
    """`path` as logs may keep it: the secret of a token link replaced by `*`."""
    return _SECRET_SEGMENT.sub("*", path)


ERROR_MESSAGES = {
    400: lambda: _("The request could not be understood. Go back, check the form and try again."),
    404: lambda: _("This page or link does not exist. Check that you copied the whole link."),
    405: lambda: _("This address cannot be used that way."),
    410: lambda: _("This link is no longer valid."),
    413: lambda: _("What you sent is too large. Shorten the longest answers and try again."),
    429: lambda: _("Too many attempts from your connection. Please wait an hour and try again."),
}


def error_page(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    message = ERROR_MESSAGES.get(code, lambda: _("Something went wrong on our side."))()
    return render_template("error.html", code=code, message=message), code


def _unexpected_error(exc: Exception) -> tuple[str, int]:
    if isinstance(exc, HTTPException):
        return error_page(exc)
    log.exception("unhandled error on %s %s", request.method, redact_path(request.path))
    return error_page(InternalServerError())


def _database_unavailable(exc: Exception) -> tuple[str, int, dict[str, str]]:
    """A calm 503 while the database is away; a form that was sent comes back, ready to resend.

    Whatever the request began is rolled back when its session closes, so sending again is safe.
    """
    log.error(
        "database unavailable on %s %s: %s",
        request.method,
        redact_path(request.path),
        unavailable_reason(exc),
    )
    kept = list(request.form.items(multi=True)) if request.method == "POST" else []
    query = request.query_string.decode("latin-1")
    action = f"{request.path}?{query}" if query else request.path
    page = render_template("unavailable.html", kept=kept, action=action)
    return page, 503, {"Retry-After": "60"}


def init_app(app: Flask) -> None:
    from service.console.routes import bp as console_bp
    from service.devmail.routes import bp as devmail_bp
    from service.health.routes import bp as health_bp
    from service.meetings.routes import bp as meetings_bp
    from service.membership.routes import bp as membership_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(membership_bp)
    app.register_blueprint(meetings_bp)
    app.register_blueprint(devmail_bp)
    app.register_blueprint(console_bp)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, error_page)
    app.register_error_handler(Exception, _unexpected_error)
    for unavailable in UNAVAILABLE:
        app.register_error_handler(unavailable, _database_unavailable)
    app.context_processor(_page_globals)
    # Meeting times on pages read as they do in the emails: day, time, the zone's name.
    app.jinja_env.filters["when"] = lambda value, zone: format_when(
        value, current_language(), zone
    )


def _page_globals() -> dict[str, object]:
    config = settings()
    return {
        "group_name": config.group_name_for(current_language()),
        "confirm_hours": config.confirm_ttl_hours,
    }
