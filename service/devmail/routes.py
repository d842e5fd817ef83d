"""/dev/mail: what the embedded catcher received, only while it runs (`wg run`, no SMTP host)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template
from flask.typing import ResponseReturnValue

from service.devmail import mailbox

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")

CATCHER_DIR = "WG_MAIL_CATCHER_DIR"
# The HTML of an email is shown as the recipient would see it, but fenced off from this site.
MAIL_HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "sandbox allow-popups allow-top-navigation-by-user-activation"
)


def _directory() -> Path:
    directory = current_app.config.get(CATCHER_DIR)
    if not directory:
        abort(404)
    return Path(directory)


@bp.route("")
def index() -> ResponseReturnValue:
    return render_template("devmail/index.html", mails=mailbox.newest_first(_directory()))


@bp.route("/<name>")
def show(name: str) -> ResponseReturnValue:
    mail = mailbox.find(_directory(), name) or abort(404)
    return render_template("devmail/show.html", mail=mail)


@bp.route("/<name>/html")
def html(name: str) -> ResponseReturnValue:
    mail = mailbox.find(_directory(), name) or abort(404)
    response = Response(mail.part("html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = MAIL_HTML_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.route("/<name>/raw")
def raw(name: str) -> ResponseReturnValue:
    mailbox.find(_directory(), name) or abort(404)
    data = (_directory() / name).read_bytes()
    return Response(data, mimetype="text/plain; charset=utf-8")
