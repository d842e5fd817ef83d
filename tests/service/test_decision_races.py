"""Two coordinators deciding the same join request at once: one decision wins, one email goes."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from service.db import get_database
from service.membership import operations
from service.models import (
    AuditEvent,
    Contact,
    ContactStatus,
    JoinRequest,
    Organisation,
    RequestStatus,
)
from tests.web import csrf_token, post_with_csrf, submit_join_form

APPLICANT = "amara@riverbank.example"


def pending_request(client, smtp_server, deliver, coordinators) -> list[str]:
    """A confirmed join request (the applicant alone); the review link of each coordinator."""
    submit_join_form(client, **{"representatives-0-name": "", "representatives-0-email": ""})
    deliver()
    post_with_csrf(client, smtp_server.single_message_to(APPLICANT).link("/confirm/"))
    deliver()
    links = [smtp_server.single_message_to(a).link("/review/") for a in coordinators]
    smtp_server.clear()
    return links


def in_threads(*actions) -> list[object]:
    """Run each action in its own thread, all at once; their results in order."""
    results: list[object] = [None] * len(actions)
    errors: list[BaseException] = []

    def run(index: int, action) -> None:  # type: ignore[no-untyped-def]
        try:
            results[index] = action()
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def assert_one_decision(db, smtp_server, coordinators) -> RequestStatus:
    """The request, the organisations, the contacts and the mail all tell one decision."""
    status = db.scalar(select(JoinRequest.status))
    organisations = db.scalar(select(func.count()).select_from(Organisation))
    active = db.scalars(select(Contact.email).where(Contact.status == ContactStatus.ACTIVE)).all()
    to_applicant = [mail.subject for mail in smtp_server.messages_to(APPLICANT)]
    decisions = db.scalars(
        select(AuditEvent.action).where(AuditEvent.action.in_(["join.approved", "join.declined"]))
    ).all()

    assert len(decisions) == 1, decisions
    assert len(to_applicant) == 1, to_applicant
    if status is RequestStatus.APPROVED:
        assert (organisations, active) == (1, [APPLICANT])
        assert to_applicant[0].startswith("Welcome")
    else:
        assert status is RequestStatus.DECLINED
        assert (organisations, active) == (0, [])
        assert "Welcome" not in to_applicant[0]
    return status


@pytest.mark.parametrize("second", ["approve", "decline"])
def test_two_coordinators_deciding_at_once_make_one_decision_and_one_email(
    app, client, smtp_server, deliver, db, clock, coordinators, second
):
    pending_request(client, smtp_server, deliver, coordinators)
    request_id = db.scalar(select(JoinRequest.id))
    database = get_database(app)
    # On PostgreSQL both sessions read the request as pending before either decides: the
    # interleaving of two web workers that made two organisations. SQLite's writers begin
    # with BEGIN IMMEDIATE, so there the second one reads only after the first committed.
    both_read = threading.Barrier(2, timeout=30)
    reads_overlap = database.engine.dialect.name == "postgresql"

    def coordinator(approve: bool, reviewer: str):  # type: ignore[no-untyped-def]
        def decide() -> bool:
            with app.app_context(), database.sessions() as session:
                join_request = session.get(JoinRequest, request_id)
                assert join_request is not None
                if reads_overlap:
                    assert join_request.status is RequestStatus.PENDING
                    both_read.wait()
                decided = operations.decide(
                    session, join_request, approve=approve, reviewer=reviewer, note="", now=clock()
                )
                session.commit()
                return decided

        return decide

    results = in_threads(
        coordinator(True, coordinators[0]), coordinator(second == "approve", coordinators[1])
    )
    deliver()

    assert sorted(results) == [False, True]
    assert_one_decision(db, smtp_server, coordinators)


@pytest.mark.parametrize("decisions", [("approve", "approve"), ("approve", "decline")])
def test_two_coordinators_pressing_at_once_one_is_told_it_was_decided(
    app, client, smtp_server, deliver, db, coordinators, decisions
):
    links = pending_request(client, smtp_server, deliver, coordinators)
    browsers = [app.test_client() for _ in links]
    forms = [
        {"csrf_token": csrf_token(browser, link), "decision": decision}
        for browser, link, decision in zip(browsers, links, decisions, strict=True)
    ]
    start = threading.Barrier(len(links), timeout=30)

    def press(index: int):  # type: ignore[no-untyped-def]
        def post() -> int:
            start.wait()
            return browsers[index].post(links[index], data=forms[index]).status_code

        return post

    statuses = in_threads(press(0), press(1))
    deliver()

    assert sorted(statuses) == [302, 409]
    assert_one_decision(db, smtp_server, coordinators)
