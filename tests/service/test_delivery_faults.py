"""Faults of our own set-up never fail a member's mail: it waits, loudly, and goes out once."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from sqlalchemy import select

from emails.names import JOIN_WELCOME
from emails.transport import Transport
from emails.verp import message_number
from service import create_app, outbox
from service.cli import cli
from service.config import settings
from service.db import get_database, session_scope
from service.migrations import upgrade
from service.models import DeliveryFault, OutboxStatus
from service.outbox import LEASE, OutboxSender
from tests.conftest import app_config
from tests.faulty_smtp import FaultySmtp
from tests.service.test_outbox import queue, row_for

REFUSED_SENDER = "553 5.7.1 <secretariat+b-1@wg.test>: Sender address rejected: not owned by user"


@pytest.fixture
def relay() -> Iterator[FaultySmtp]:
    with FaultySmtp() as server:
        yield server


@pytest.fixture
def app_settings(relay: FaultySmtp) -> dict[str, str]:
    return {"WG_SMTP_PORT": str(relay.port), "WG_REPLY_TO": "Secretariat <secretariat@wg.test>"}


def open_fault(db) -> DeliveryFault | None:
    db.expire_all()
    return db.scalar(select(DeliveryFault).where(DeliveryFault.cleared_at.is_(None)))


def test_a_refused_sender_holds_mail_and_it_goes_out_once_after_the_fix(
    app, clock, db, relay, deliver
):
    relay.faults.refuse_sender = REFUSED_SENDER
    queue(app, clock, "amara@riverbank.example")

    held = deliver().delivery

    assert (held.sent, held.failed, held.retried, held.held) == (0, 0, 0, 1)
    row = row_for(db, "amara@riverbank.example")
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 0)
    assert "not owned by user" in row.last_error
    fault = open_fault(db)
    assert fault is not None and fault.kind == "sender"

    relay.faults.refuse_sender = ""  # the operator mends WG_MAIL_FROM / the relay
    clock.advance(seconds=30)
    assert deliver().delivery.handled == 0  # within the minute nothing is tried
    clock.advance(seconds=31)
    sent = deliver().delivery

    assert sent.sent == 1 and open_fault(db) is None
    assert relay.message_ids()[row.message_id] == 1
    assert row_for(db, "amara@riverbank.example").status is OutboxStatus.SENT


def test_a_relay_down_for_days_fails_nothing_and_expires_only_what_had_a_time(
    app, clock, db, relay, deliver
):
    relay.stop()
    queue(app, clock, "amara@riverbank.example")
    queue(app, clock, "dara@riverbank.example", not_after=clock() + timedelta(hours=5))

    for _hour in range(72):
        deliver()
        clock.advance(hours=1)

    waiting, timed = row_for(db, "amara@riverbank.example"), row_for(db, "dara@riverbank.example")
    assert (waiting.status, waiting.attempts) == (OutboxStatus.QUEUED, 0)
    assert "cannot connect" in waiting.last_error
    assert timed.status is OutboxStatus.EXPIRED
    relay.start()
    assert deliver().delivery.sent == 1
    assert relay.message_ids() == {waiting.message_id: 1}


def test_the_fault_is_named_by_wg_outbox_which_exits_non_zero(app, clock, relay, deliver):
    relay.faults.refuse_sender = REFUSED_SENDER
    queue(app, clock, "amara@riverbank.example")
    deliver()

    result = app.test_cli_runner().invoke(cli, ["outbox"])

    assert result.exit_code == 1
    assert "MAIL IS NOT GOING OUT" in result.output and "not owned by user" in result.output


def test_healthz_is_degraded_with_the_reason_while_mail_is_held(app, client, clock, relay, deliver):
    assert client.get("/healthz").json["status"] == "ok"
    relay.stop()
    queue(app, clock, "amara@riverbank.example")
    deliver()

    health = client.get("/healthz")

    assert health.status_code == 200  # the pages work: a load balancer keeps this web process
    assert health.json["status"] == "degraded"
    assert "cannot connect" in health.json["reason"]


def test_while_held_the_relay_is_checked_once_a_minute_even_with_nothing_to_send(
    app, clock, db, relay, deliver
):
    relay.faults.refuse_sender = REFUSED_SENDER
    queue(app, clock, "amara@riverbank.example")
    deliver()
    relay.faults.refuse_sender = ""
    clock.advance(minutes=1)
    deliver()  # sends the waiting message and clears the fault
    relay.stop()
    queue(app, clock, "dara@riverbank.example")
    deliver()  # the relay is down now
    assert open_fault(db) is not None
    clock.advance(days=1)
    with app.app_context(), session_scope(app) as session:  # what waited was withdrawn
        outbox.withdraw(session, "", reason="test", keep=lambda _key: False)

    relay.start()
    clock.advance(minutes=1)
    deliver()  # nothing to send: it logs in alone, and finds the relay mended

    assert open_fault(db) is None


def test_retry_requeues_failed_mail_once_each_and_since_limits_it(
    app, clock, db, relay, deliver
):
    relay.faults.refuse = {
        "old@riverbank.example": "550 5.1.1 no such user",
        "new@riverbank.example": "550 5.1.1 no such user",
    }
    queue(app, clock, "old@riverbank.example")
    deliver()
    clock.advance(hours=1)
    since = clock()
    queue(app, clock, "new@riverbank.example")
    deliver()
    assert {row_for(db, a).status for a in ("old@riverbank.example", "new@riverbank.example")} == {
        OutboxStatus.FAILED
    }
    relay.faults.refuse = {}  # the members' mailboxes exist again
    runner = app.test_cli_runner()

    first = runner.invoke(cli, ["outbox", "retry", "--failed", "--since", since.isoformat()])
    again = runner.invoke(cli, ["outbox", "retry", "--failed", "--since", since.isoformat()])
    deliver()

    assert (first.exit_code, first.output.strip()) == (0, "requeued 1 message")
    assert again.output.strip() == "requeued 0 messages"
    assert row_for(db, "new@riverbank.example").status is OutboxStatus.SENT
    assert row_for(db, "old@riverbank.example").status is OutboxStatus.FAILED
    assert len(relay.messages) == 1


def test_retry_without_failed_sends_what_waits_for_its_next_attempt_now(
    app, clock, db, relay, deliver
):
    relay.faults.refuse = {"amara@riverbank.example": "451 4.3.0 try later"}
    queue(app, clock, "amara@riverbank.example")
    deliver()
    assert row_for(db, "amara@riverbank.example").not_before > clock()
    relay.faults.refuse = {}

    app.test_cli_runner().invoke(cli, ["outbox", "retry"])
    deliver()

    assert row_for(db, "amara@riverbank.example").status is OutboxStatus.SENT


def test_every_message_leaves_with_a_return_path_naming_it(app, clock, db, relay, deliver):
    queue(app, clock, "amara@riverbank.example")
    queue(app, clock, "dara@riverbank.example")

    deliver()

    secret = settings(app).secret_key
    for mail in relay.messages:
        row = row_for(db, mail.rcpt_tos[0])
        assert mail.mail_from.startswith("secretariat+b-")
        assert mail.mail_from.endswith("@wg.test")
        assert message_number(mail.mail_from, secret) == row.id
    assert message_number(relay.messages[0].mail_from, "another secret") is None


def standalone_app(tmp_path, relay: FaultySmtp, **settings_: str) -> Flask:
    """An app of its own (SQLite) for settings the shared `app` fixture does not have."""
    app = create_app(
        app_config(
            f"sqlite:///{tmp_path / 'own.sqlite3'}", relay.port, tmp_path / "own", **settings_
        )
    )
    upgrade(get_database(app).engine)
    return app


def send_everything(app: Flask, clock) -> None:
    with Transport(settings(app).smtp()) as transport:
        OutboxSender(app, transport, now=clock).run_once()


def test_a_bounce_address_replaces_the_reply_mailbox_in_the_return_path(clock, relay, tmp_path):
    app = standalone_app(tmp_path, relay, WG_BOUNCE_ADDRESS="bounces@wg.test")
    queue(app, clock, "amara@riverbank.example")

    send_everything(app, clock)

    assert relay.messages[0].mail_from.startswith("bounces+b-")


@pytest.fixture
def dkim_key(tmp_path) -> tuple[str, bytes]:
    """A DKIM private key file, and the DNS TXT record that publishes its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return str(path), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_mail_is_dkim_signed_when_a_key_is_set_and_verifies(clock, relay, dkim_key, tmp_path):
    key_file, record = dkim_key
    app = standalone_app(
        tmp_path,
        relay,
        WG_DKIM_SELECTOR="wg2026",
        WG_DKIM_DOMAIN="wg.test",
        WG_DKIM_KEY_FILE=key_file,
    )
    queue(app, clock, "amara@riverbank.example")

    send_everything(app, clock)

    raw = relay.messages[0].raw
    published = {b"wg2026._domainkey.wg.test.": record}
    assert raw.startswith(b"DKIM-Signature: ")
    assert b"d=wg.test" in raw.split(b"\r\n\r\n")[0] and b"s=wg2026" in raw.split(b"\r\n\r\n")[0]
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: published.get(name))
    tampered = raw.replace(b"Subject: ", b"Subject: Re: ", 1)
    assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: published.get(name))


def test_a_claim_lasts_minutes_and_a_working_sender_renews_it(app, clock, db, relay):
    queue(app, clock, "amara@riverbank.example")
    with Transport(settings(app).smtp()) as transport:
        sender = OutboxSender(app, transport, now=clock)
        with app.app_context(), session_scope(app) as session:
            outbox.claim(session, owner=sender.owner, now=clock(), limit=10, lease=sender.lease)
        claimed = row_for(db, "amara@riverbank.example").lease_expires_at

        clock.advance(seconds=90)
        sender._renew_leases(clock())

    assert timedelta(minutes=2) == LEASE and claimed == clock() - timedelta(seconds=90) + LEASE
    assert row_for(db, "amara@riverbank.example").lease_expires_at == clock() + LEASE


LINK_SECRET = "Zq3x9PbK2mVt7LcW8nYd4R"


def test_a_sent_message_keeps_no_secret_of_its_links(app, clock, db, relay, deliver):
    with app.app_context(), session_scope(app) as session:
        outbox.enqueue(
            session,
            JOIN_WELCOME,
            to="amara@riverbank.example",
            lang="en",
            dedupe_key="welcome",
            context={
                "organisation_name": "Riverbank",
                "unsubscribe_url": f"http://wg.test/unsubscribe/{LINK_SECRET}",
                "list_unsubscribe": {
                    "url": f"http://wg.test/unsubscribe/{LINK_SECRET}",
                    "mailto": f"mailto:secretariat@wg.test?subject=unsubscribe%20{LINK_SECRET}",
                },
            },
            now=clock(),
            list_mail=True,
        )

    deliver()

    row = row_for(db, "amara@riverbank.example")
    assert row.status is OutboxStatus.SENT
    assert LINK_SECRET not in str(row.context)
    assert row.context["unsubscribe_url"] == "http://wg.test/unsubscribe/*"
    assert row.context["organisation_name"] == "Riverbank"
    assert LINK_SECRET in relay.messages[0].raw.decode()  # the member has it
