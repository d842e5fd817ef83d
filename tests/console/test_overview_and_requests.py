"""The overview and the join requests: what needs a coordinator, and one decision per request."""

from __future__ import annotations

import html
import threading

from sqlalchemy import func, select

from service.db import session_scope
from service.meetings import operations as meetings
from service.models import (
    AuditEvent,
    Contact,
    Invitation,
    JoinRequest,
    Organisation,
    RequestStatus,
    Rsvp,
)
from tests.console.conftest import COORDINATOR, page_csrf, post, sign_in
from tests.service.test_decision_races import APPLICANT, assert_one_decision, in_threads
from tests.service.test_meetings import details, local
from tests.web import submit_join_form


def confirmed_request(client, smtp_server, deliver) -> None:
    submit_join_form(client, **{"representatives-0-name": "", "representatives-0-email": ""})
    deliver()
    link = smtp_server.single_message_to(APPLICANT).link("/confirm/")
    post(client, link)
    deliver()
    smtp_server.clear()


def test_the_overview_shows_who_is_coming_by_organisation_with_substitutes(
    app, client, make_member, clock, db, deliver, smtp_server
):
    clock.set(local(2027, 1, 5, 9, 0))
    console = sign_in(client, deliver, smtp_server) and client
    amara = make_member("amara@riverbank.example", name="Amara")
    make_member("bopha@memory.example", name="Bopha", organisation="Memory Association")
    with app.app_context(), session_scope() as session:
        meetings.add_meeting(session, details(local(2027, 1, 14, 14, 0)), now=clock())
    deliver()
    invitation = db.scalars(select(Invitation).where(Invitation.contact_id == amara.id)).one()
    invitation.answer, invitation.substitute_name = Rsvp.NO, "Sokha Chan"
    db.commit()

    page = html.unescape(console.get("/console").get_data(as_text=True))

    assert "Monthly meeting" in page
    assert "Riverbank Survivors Network" in page and "Memory Association" in page
    assert "In their place: Sokha Chan" in page
    assert "Colleagues coming in someone's place: 1" in page


def test_an_applicant_who_lost_the_link_gets_a_new_one_from_the_overview(
    client, console, smtp_server, deliver, db
):
    submit_join_form(client)
    deliver()
    smtp_server.clear()
    request_id = db.scalar(select(JoinRequest.id))
    assert "amara@riverbank.example" in console.get("/console").get_data(as_text=True)

    answer = post(console, f"/console/requests/{request_id}/resend", form_page="/console")
    deliver()

    assert answer.status_code == 303
    assert smtp_server.single_message_to(APPLICANT).link("/confirm/")
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "join.confirmation_resent"))
    assert event.one().actor == COORDINATOR


def test_a_coordinator_approves_a_request_in_the_console(client, console, smtp_server, deliver, db):
    confirmed_request(client, smtp_server, deliver)
    request_id = db.scalar(select(JoinRequest.id))
    path = f"/console/requests/{request_id}"
    assert "Riverbank Survivors Network" in console.get("/console/requests").get_data(as_text=True)

    answer = post(console, path, decision="approve", note="Welcome")
    deliver()

    assert answer.status_code == 303
    assert db.scalar(select(JoinRequest.reviewed_by)) == COORDINATOR
    assert smtp_server.single_message_to(APPLICANT).subject.startswith("Welcome")
    assert post(console, path, decision="decline").status_code == 409


def test_approving_in_the_console_asks_where_people_go_when_a_member_has_the_name(
    client, console, smtp_server, deliver, db, make_member
):
    make_member("sokha@riverbank.example", name="Sokha")  # Riverbank Survivors Network
    confirmed_request(client, smtp_server, deliver)
    path = f"/console/requests/{db.scalar(select(JoinRequest.id))}"
    assert "is a member already" in html.unescape(console.get(path).get_data(as_text=True))

    unanswered = post(console, path, decision="approve")
    approved = post(console, path, decision="approve", destination="existing")

    assert unanswered.status_code == 400
    assert approved.status_code == 303
    assert db.scalar(select(func.count()).select_from(Organisation)) == 1
    people = dict(db.execute(select(Contact.email, Contact.organisation_id)).all())
    assert people[APPLICANT] == people["sokha@riverbank.example"]


def test_two_coordinators_deciding_the_same_request_at_once_make_one_decision(
    app, client, smtp_server, deliver, db, coordinators
):
    confirmed_request(client, smtp_server, deliver)
    request_id = db.scalar(select(JoinRequest.id))
    browsers = [app.test_client() for _ in coordinators]
    for browser, address in zip(browsers, coordinators, strict=True):
        sign_in(browser, deliver, smtp_server, address)
    smtp_server.clear()
    path = f"/console/requests/{request_id}"
    forms = [
        {"csrf_token": page_csrf(browser, path), "decision": decision}
        for browser, decision in zip(browsers, ("approve", "decline"), strict=True)
    ]
    start = threading.Barrier(len(browsers), timeout=30)

    def press(index: int):  # type: ignore[no-untyped-def]
        def send() -> int:
            start.wait()
            return browsers[index].post(path, data=forms[index]).status_code

        return send

    statuses = in_threads(press(0), press(1))
    deliver()

    assert sorted(statuses) == [303, 409]
    assert assert_one_decision(db, smtp_server, coordinators) in (
        RequestStatus.APPROVED,
        RequestStatus.DECLINED,
    )
