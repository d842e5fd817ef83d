"""/console/sign-in: ask for a link by email, open it, press the button; and sign out."""

from __future__ import annotations

import hashlib

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from forms.console import ButtonForm, SignInForm
from service.clock import now
from service.config import settings
from service.console import access
from service.console.blueprint import COOKIE_PATH, SESSION_COOKIE, bp
from service.db import db_session
from service.extensions import limiter

# Sign-in requests: a few for one address (someone's mailbox is not to be flooded), more for
# one client (an office behind one address has several coordinators).
ADDRESS_LIMIT = "5 per 15 minutes"
CLIENT_LIMIT = "30 per hour"


def _address_key() -> str:
    """The rate-limit key of the address asked for, hashed: counters keep no address."""
    address = (request.form.get("email") or "").strip().lower()
    return "console-sign-in:" + hashlib.sha256(address.encode("utf-8")).hexdigest()[:32]


@bp.route("/console/sign-in", methods=["GET", "POST"])
@limiter.limit(ADDRESS_LIMIT, key_func=_address_key, methods=["POST"])
@limiter.limit(CLIENT_LIMIT, methods=["POST"])
def sign_in() -> ResponseReturnValue:
    form = SignInForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("console/sign_in.html", form=form), 400
        access.request_link(db_session(), form.email.data, now=now())
        db_session().commit()
        return redirect(url_for(".sign_in_sent"))
    return render_template("console/sign_in.html", form=form)


@bp.route("/console/sign-in/sent")
def sign_in_sent() -> ResponseReturnValue:
    minutes = int(access.SIGN_IN_TTL.total_seconds() // 60)
    return render_template("console/sign_in_sent.html", minutes=minutes)


@bp.route("/console/sign-in/<token>", methods=["GET", "POST"])
@limiter.limit(CLIENT_LIMIT, methods=["POST"])
def sign_in_link(token: str) -> ResponseReturnValue:
    """The emailed link: GET shows one button (a scanner's visit signs nobody in)."""
    form = ButtonForm()
    if not access.link_is_usable(db_session(), token, now=now()):
        return render_template("console/sign_in_link.html", form=form, usable=False), 410
    if request.method == "GET":
        return render_template("console/sign_in_link.html", form=form, usable=True)
    if not form.validate_on_submit():
        return render_template("console/sign_in_link.html", form=form, usable=True), 400
    session = access.sign_in(db_session(), token, now=now())
    if session is None:  # pressed a moment ago, in another tab
        return render_template("console/sign_in_link.html", form=form, usable=False), 410
    db_session().commit()
    response = redirect(url_for(".overview"), code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=settings().console_session_hours * 3600,
        path=COOKIE_PATH,
        secure=settings().production,
        httponly=True,
        samesite="Lax",
    )
    return response


@bp.route("/console/sign-out", methods=["POST"])
def sign_out() -> ResponseReturnValue:
    access.sign_out(db_session(), request.cookies.get(SESSION_COOKIE, ""), now=now())
    db_session().commit()
    response = redirect(url_for(".sign_in"), code=303)
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, secure=settings().production, httponly=True
    )
    return response
