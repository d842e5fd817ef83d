"""/healthz: is the database reachable, and is mail going out? For load balancers and monitors."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from service import faults
from service.db import get_database

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz() -> ResponseReturnValue:
    """200 `ok`; 200 `degraded` with the reason while our mail set-up fails (the pages still
    work, so a load balancer must keep sending visitors); 503 when the database is down."""
    try:
        with get_database().read_sessions() as db:
            open_faults = [f for c in (faults.SMTP, faults.IMAP) if (f := faults.open_fault(db, c))]
    except SQLAlchemyError:
        return jsonify(status="unavailable", database="unreachable"), 503
    if open_faults:
        reason = "; ".join(faults.describe(fault) for fault in open_faults)
        return jsonify(status="degraded", database="ok", reason=reason)
    return jsonify(status="ok", database="ok")
