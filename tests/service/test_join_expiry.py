"""No one is locked out: unconfirmed requests expire, a new submission sends a fresh link,
and the answer (and the work behind it) is the same whether or not the address is known."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from service.db import get_database
from tests.web import csrf_token, join_form, post_with_csrf, submit_join_form

APPLICANT = "amara@riverbank.example"


def test_a_new_submission_for_an_unconfirmed_address_sends_a_fresh_link(
    client, smtp_server, deliver, coordinators
):
    # Someone else entered the address first, with their own organisation.
    submit_join_form(client, organisation_name="Not My Organisation")
    deliver()
    first = smtp_server.single_message_to(APPLICANT)
    assert "Not My Organisation" in first.text

    answer = submit_join_form(client)
    deliver()

    assert answer.status_code == 302 and answer.headers["Location"].endswith("/join/sent")
    fresh = smtp_server.messages_to(APPLICANT)[-1]
    assert fresh is not first and "Riverbank Survivors Network" in fresh.text
    assert fresh.link("/confirm/") != first.link("/confirm/")
    assert post_with_csrf(client, fresh.link("/confirm/")).status_code == 302
    deliver()
    assert "Riverbank Survivors Network" in smtp_server.single_message_to(coordinators[0]).subject
    # Confirming one request closes the address's other unconfirmed ones.
    assert client.get(first.link("/confirm/")).status_code == 410
    token = csrf_token(client, "/join")
    assert client.post(first.link("/confirm/"), data={"csrf_token": token}).status_code == 410


def test_an_unconfirmed_request_expires_with_its_link_and_the_address_can_join_again(
    client, smtp_server, deliver, clock
):
    submit_join_form(client)
    deliver()
    lost = smtp_server.single_message_to(APPLICANT).link("/confirm/")
    clock.advance(hours=73)
    assert "expired" in client.get(lost).get_data(as_text=True)

    submit_join_form(client)
    deliver()

    fresh = smtp_server.messages_to(APPLICANT)[-1].link("/confirm/")
    assert fresh != lost
    assert post_with_csrf(client, fresh).status_code == 302


def test_fresh_links_are_limited_to_three_an_hour_per_address(client, smtp_server, deliver, clock):
    answers = [submit_join_form(client) for _ in range(5)]
    deliver()

    assert {(a.status_code, a.headers["Location"]) for a in answers} == {(302, "/join/sent")}
    assert len(smtp_server.messages_to(APPLICANT)) == 3
    clock.advance(minutes=61)
    submit_join_form(client)
    deliver()
    assert len(smtp_server.messages_to(APPLICANT)) == 4


def prepare(state: str, client, smtp_server, deliver, make_member) -> None:
    """Make APPLICANT unknown, waiting for confirmation, waiting for review, or a member."""
    if state == "member":
        make_member(APPLICANT, name="Amara Sok")
    if state in ("unconfirmed", "pending"):
        submit_join_form(client)
        deliver()
    if state == "pending":
        post_with_csrf(client, smtp_server.single_message_to(APPLICANT).link("/confirm/"))
        deliver()


KNOWN = ["unconfirmed", "pending", "member"]


def submit_and_follow(client, email: str) -> tuple[int, str, str]:
    answer = submit_join_form(client, email=email)
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    return answer.status_code, answer.headers["Location"], page


@pytest.mark.parametrize("state", KNOWN)
def test_the_answer_is_the_same_whether_or_not_the_address_is_known(
    app, client, smtp_server, deliver, make_member, state
):
    unknown = submit_and_follow(app.test_client(), "someone.new@elsewhere.example")
    prepare(state, client, smtp_server, deliver, make_member)

    known = submit_and_follow(client, APPLICANT)

    assert known == unknown


def statements_of_a_submission(app, client, email: str) -> list[str]:
    """The SQL a join form submission for `email` runs, without its values."""
    data = {**join_form(email=email), "csrf_token": csrf_token(client, "/join")}
    seen: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _executemany):  # type: ignore[no-untyped-def]
        seen.append(re.sub(r"\s+", " ", statement))

    engine = get_database(app).engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.post("/join", data=data).status_code == 302
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


@pytest.mark.parametrize("state", KNOWN)
def test_a_known_address_costs_the_same_statements_as_an_unknown_one(
    app, client, smtp_server, deliver, make_member, state
):
    prepare(state, client, smtp_server, deliver, make_member)
    statements_of_a_submission(app, client, "first.visitor@elsewhere.example")  # warms caches

    unknown = statements_of_a_submission(app, client, "someone.new@elsewhere.example")
    known = statements_of_a_submission(app, client, APPLICANT)

    assert known == unknown
    assert any("INSERT INTO outbound_email" in statement for statement in known)
