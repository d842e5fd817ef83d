"""The activity page: the audit log with names, not numbers, filtered by kind and date."""

from __future__ import annotations

from sqlalchemy import select

from service.models import JoinRequest
from tests.console.conftest import COORDINATOR, post
from tests.console.test_overview_and_requests import confirmed_request


def test_the_activity_log_names_what_and_who_and_filters_by_kind_and_date(
    client, console, smtp_server, deliver, db
):
    confirmed_request(client, smtp_server, deliver)
    request_id = db.scalar(select(JoinRequest.id))
    post(console, f"/console/requests/{request_id}", decision="approve", note="")

    everything = console.get("/console/activity").get_data(as_text=True)
    joins = console.get("/console/activity?kind=join").get_data(as_text=True)
    sign_ins = console.get("/console/activity?kind=console").get_data(as_text=True)
    before = console.get("/console/activity?to=2026-11-30").get_data(as_text=True)
    in_khmer = console.get("/console/activity?lang=km").get_data(as_text=True)

    assert "request approved" in everything and "Riverbank Survivors Network" in everything
    assert COORDINATOR in everything and "Amara Sok &lt;amara@riverbank.example&gt;" in everything
    assert "request approved" in joins and "signed in" not in joins
    assert "signed in" in sign_ins and "request approved" not in sign_ins
    assert "Nothing happened in this time." in before
    assert "បានអនុម័តសំណើ" in in_khmer
