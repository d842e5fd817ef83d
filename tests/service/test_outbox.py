"""The outbox: queued with its cause, claimed under a lease, sent once, retried or failed."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from emails.names import JOIN_WELCOME
from emails.transport import Transport
from service import outbox
from service.config import settings
from service.db import session_scope
from service.models import Contact, ContactStatus, OutboundEmail, OutboxStatus, Suppression
from service.outbox import OutboxSender


def queue(app, clock, address: str, key: str | None = None, **options) -> None:
    with app.app_context(), session_scope(app) as db:
        outbox.enqueue(
            db,
            JOIN_WELCOME,
            to=address,
            to_name="Member",
            lang="en",
            dedupe_key=key or f"test:{address}",
            context={"organisation_name": "Riverbank Survivors Network"},
            now=clock(),
            **options,
        )


def row_for(db, address: str) -> OutboundEmail:
    db.expire_all()
    return db.scalars(select(OutboundEmail).where(OutboundEmail.recipient == address)).one()


def test_message_is_queued_once_per_dedupe_key(app, clock, db):
    queue(app, clock, "a@riverbank.example", key="same")
    queue(app, clock, "b@riverbank.example", key="same")

    assert [r.recipient for r in db.scalars(select(OutboundEmail))] == ["a@riverbank.example"]


def test_mail_enqueued_in_a_rolled_back_transaction_does_not_exist(app, clock, db):
    class Abort(Exception):
        pass

    try:
        with app.app_context(), session_scope(app) as session:
            outbox.enqueue(
                session,
                JOIN_WELCOME,
                to="a@riverbank.example",
                lang="en",
                dedupe_key="k",
                context={"organisation_name": "X"},
                now=clock(),
            )
            raise Abort
    except Abort:
        pass

    assert db.scalars(select(OutboundEmail)).all() == []


def test_temporary_refusal_is_retried_later_with_the_same_message_id(
    app, clock, db, smtp_server, deliver
):
    smtp_server.refuse("a@riverbank.example", "451 4.3.0 mailbox busy", "250 OK")
    queue(app, clock, "a@riverbank.example")

    first = deliver()
    row = row_for(db, "a@riverbank.example")
    assert (first.delivery.retried, row.status, row.attempts) == (1, OutboxStatus.QUEUED, 1)
    assert "451" in row.last_error
    assert row.not_before == clock() + timedelta(minutes=1)

    assert deliver().delivery.handled == 0  # not yet due again
    clock.advance(minutes=1)
    deliver()

    row = row_for(db, "a@riverbank.example")
    mail = smtp_server.single_message_to("a@riverbank.example")
    assert row.status is OutboxStatus.SENT and row.sent_at == clock()
    assert mail["Message-ID"] == row.message_id


def test_permanent_refusal_fails_at_once_and_shows_in_health(app, clock, db, smtp_server, deliver):
    smtp_server.refuse("gone@riverbank.example", "550 5.1.1 no such user")
    queue(app, clock, "gone@riverbank.example")

    deliver()
    clock.advance(hours=1)
    deliver()

    row = row_for(db, "gone@riverbank.example")
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, 1)
    health = outbox.health(db, now=clock())
    assert health.counts["failed"] == 1
    assert health.last_errors[0]["recipient"] == "gone@riverbank.example"
    assert "550" in health.last_errors[0]["error"]


def test_retries_end_in_failure_after_the_last_backoff(app, clock, db, smtp_server, deliver):
    smtp_server.refuse("busy@riverbank.example", "421 4.7.0 try again later")
    queue(app, clock, "busy@riverbank.example")

    for _ in range(outbox.MAX_ATTEMPTS):
        deliver()
        clock.advance(hours=13)

    row = row_for(db, "busy@riverbank.example")
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, outbox.MAX_ATTEMPTS)


def test_message_past_its_time_is_expired_not_sent(app, clock, db, smtp_server, deliver):
    queue(app, clock, "late@riverbank.example", not_after=clock() + timedelta(hours=1))
    clock.advance(hours=2)

    assert deliver().delivery.expired == 1
    assert row_for(db, "late@riverbank.example").status is OutboxStatus.EXPIRED
    assert smtp_server.messages == []


def test_list_mail_to_a_suppressed_address_is_not_sent(app, clock, db, smtp_server, deliver):
    db.add(Suppression(email="left@riverbank.example", reason="unsubscribed", created_at=clock()))
    db.commit()
    queue(app, clock, "left@riverbank.example", list_mail=True)

    assert deliver().delivery.suppressed == 1
    assert row_for(db, "left@riverbank.example").status is OutboxStatus.SUPPRESSED
    assert smtp_server.messages == []


def test_crashed_senders_claim_is_taken_over_when_its_lease_ends(
    app, clock, db, smtp_server, deliver
):
    queue(app, clock, "a@riverbank.example")
    lease = timedelta(minutes=5)
    with app.app_context(), session_scope(app) as session:
        claimed = outbox.claim(session, owner="crashed", now=clock(), limit=10, lease=lease)
    assert len(claimed) == 1  # ...and the sender dies before sending

    assert deliver().delivery.handled == 0
    clock.advance(minutes=6)
    assert deliver().delivery.sent == 1

    assert len(smtp_server.messages_to("a@riverbank.example")) == 1


def test_two_senders_at_once_send_every_message_exactly_once(app, clock, db, smtp_server):
    addresses = [f"member{n}@riverbank.example" for n in range(60)]
    for address in addresses:
        queue(app, clock, address)
    transports = [Transport(settings(app).smtp()) for _ in range(2)]
    senders = [OutboxSender(app, t, now=clock, batch_size=7) for t in transports]

    threads = [threading.Thread(target=s.run_once) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for transport in transports:
        transport.close()

    ids = Counter(m["Message-ID"] for m in smtp_server.messages)
    assert len(ids) == 60 and set(ids.values()) == {1}
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == sorted(addresses)
    statuses = db.scalars(select(OutboundEmail.status)).all()
    assert set(statuses) == {OutboxStatus.SENT}


def test_released_lease_lets_another_sender_take_the_rows_at_once(app, clock, db, deliver):
    queue(app, clock, "a@riverbank.example")
    with app.app_context(), session_scope(app) as session:
        outbox.claim(session, owner="stopping", now=clock(), limit=10, lease=timedelta(hours=1))
    with app.app_context(), session_scope(app) as session:
        assert outbox.release_leases(session, "stopping") == 1

    assert deliver().delivery.sent == 1


def test_contact_status_bounced_suppresses_list_mail(app, clock, db, smtp_server, deliver):
    from service.models import Language, Organisation, OrganisationKind, OrganisationStatus

    org = Organisation(
        name="Org",
        kind=OrganisationKind.ORGANISATION,
        status=OrganisationStatus.ACTIVE,
        created_at=clock(),
    )
    db.add(org)
    db.flush()
    db.add(
        Contact(
            organisation_id=org.id,
            name="B",
            email="b@riverbank.example",
            language=Language.EN,
            status=ContactStatus.BOUNCED,
            created_at=clock(),
        )
    )
    db.commit()
    queue(app, clock, "b@riverbank.example", list_mail=True)

    assert deliver().delivery.suppressed == 1
    assert smtp_server.messages == []
