"""/console/activity: the audit log, readable, filtered by kind and date."""

from __future__ import annotations

from datetime import date, time, timedelta

from flask import render_template, request
from flask.typing import ResponseReturnValue

from service.config import settings
from service.console import activity
from service.console.blueprint import bp
from service.console.planning import local_moment
from service.db import db_session


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


@bp.route("/console/activity")
def activity_log() -> ResponseReturnValue:
    zone = settings().timezone
    kind = request.args.get("kind", "")
    first, last = _day("from"), _day("to")
    asked_page = request.args.get("page", "0")
    page = int(asked_page) if asked_page.isdigit() and len(asked_page) < 6 else 0
    lines = activity.events(
        db_session(),
        kind=kind,
        since=local_moment(first, time.min, zone) if first else None,
        until=local_moment(last + timedelta(days=1), time.min, zone) if last else None,
        page=page,
    )
    return render_template(
        "console/activity.html",
        lines=lines,
        kinds=activity.KINDS,
        kind=kind if kind in activity.KINDS else "",
        first=first.isoformat() if first else "",
        last=last.isoformat() if last else "",
        page=page,
        more=len(lines) == activity.PAGE_SIZE,
    )
