"""/healthz: is the database reachable? For load balancers and scripts."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.db import get_database

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    try:
        with get_database().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok")
