"""Faults: senders killed or stopped mid-batch, two senders at once, a misbehaving SMTP server.

Email is unforgiving: a lost invitation or a double send is seen by everyone. These tests kill
and starve real `wg` processes and a real SMTP server and assert that nothing is lost and that
nothing arrives twice, except the unavoidable message per connection that the server accepted
just before the sender died and could record it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from emails.names import JOIN_WELCOME
from scheduler.jobs import TickReport
from service import create_app, outbox
from service.db import get_database, make_engine, session_scope
from service.migrations import upgrade
from service.models import Base, OutboundEmail, OutboxStatus
from tests.faulty_smtp import Faults, FaultySmtp
from tests.mail import free_port
from tests.service.test_meetings import add_meeting, local

WG = str(Path(sys.executable).parent / "wg")
CONNECTIONS = 2
SMTP_TIMEOUT = 5
MESSAGES = 300
# The simulated clock of `wg tick --now`: a naive time is in the group's zone.
ZONE = ZoneInfo("Asia/Phnom_Penh")
FIRST_TICK = datetime(2026, 12, 1, 9, 0)
QUEUED_AT = FIRST_TICK.replace(tzinfo=ZONE) - timedelta(minutes=5)


def after_the_lease() -> str:
    """A --now for the next sender by which the lease of a killed sender has certainly ended."""
    return (FIRST_TICK + outbox.LEASE + timedelta(minutes=1)).isoformat()


# --- real processes --------------------------------------------------------------------------


@dataclass
class Deployment:
    """One installation as an operator runs it: a database, `WG_*` settings, the `wg` command."""

    env: dict[str, str]
    cwd: Path

    def wg(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [WG, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [WG, *args],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction on the installation's database, from this (the test's) process."""
        app = create_app(self.env)
        try:
            with app.app_context(), session_scope(app) as db:
                yield db
        finally:
            get_database(app).engine.dispose()

    def enqueue(self, count: int, *, now: datetime) -> None:
        """Queue `count` welcome messages, each to its own member, in one transaction."""
        with self.session() as db:
            for n in range(count):
                outbox.enqueue(
                    db,
                    JOIN_WELCOME,
                    to=f"member{n:03}@riverbank.example",
                    to_name=f"Member {n}",
                    lang="en",
                    dedupe_key=f"fault:{n:03}",
                    context={"organisation_name": "Riverbank Survivors Network"},
                    now=now,
                )

    def rows(self) -> list[OutboundEmail]:
        with self.session() as db:
            return list(db.scalars(select(OutboundEmail).order_by(OutboundEmail.id)))

    def health(self) -> dict:
        return json.loads(self.wg("outbox", "--json").stdout)


def _empty_tables(url: str) -> None:
    """Delete every row written here, so the test session's shared schema stays empty."""
    engine = create_engine(url)
    try:
        present = set(inspect(engine).get_table_names())
        tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in present]
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


def _deployments(url: str, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    postgres = url.startswith("postgresql")

    def make(smtp: FaultySmtp, *, migrate_with_wg: bool = False, **settings: str) -> Deployment:
        deployment = Deployment(
            env={
                "PATH": os.environ["PATH"],
                "WG_INSTANCE_PATH": str(tmp_path / "instance"),
                "WG_DATABASE_URL": url,
                "WG_SECRET_KEY": "test-secret-key",
                "WG_BASE_URL": "http://wg.test",
                "WG_SMTP_HOST": "127.0.0.1",
                "WG_SMTP_PORT": str(smtp.port),
                "WG_SMTP_CONNECTIONS": str(CONNECTIONS),
                "WG_SMTP_TIMEOUT": str(SMTP_TIMEOUT),
                "WG_MAIL_FROM": "Working Group <noreply@wg.test>",
                **settings,
            },
            cwd=tmp_path,
        )
        if migrate_with_wg:
            deployment.wg("db", "upgrade")
        else:  # the same migrations, without another second of process start-up
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
        if postgres:
            _empty_tables(url)
        return deployment

    yield make
    if postgres:
        _empty_tables(url)


@pytest.fixture
def deploy(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """Make a migrated installation whose mail goes to a given SMTP server.

    SQLite: a fresh database file. PostgreSQL: this test session's own schema, emptied
    before and after, which several `wg` processes share as several machines would.
    """
    url = database_url
    if url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'wg.sqlite3'}"
    yield from _deployments(url, tmp_path)


@pytest.fixture
def deploy_on_sqlite(tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """The same on SQLite only, for faults of the sender itself rather than of the database."""
    yield from _deployments(f"sqlite:///{tmp_path / 'wg.sqlite3'}", tmp_path)


def stop(process: subprocess.Popen[str], sig: int, timeout: float = 30) -> str:
    """Send `sig` unless the process already ended; its output once it exited.

    A process still running `timeout` seconds later is killed and the test fails.
    """
    if process.poll() is None:
        os.kill(process.pid, sig)
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
        raise AssertionError(f"still running {timeout} s after signal {sig}:\n{output}") from None


def finish(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """Wait for a process that ends by itself; fail (and kill it) if it does not, or fails."""
    try:
        output = process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
        raise AssertionError(f"did not finish within {timeout} s:\n{output}") from None
    assert process.returncode == 0, output
    return output


def duplicates(smtp: FaultySmtp) -> int:
    """How many arrivals repeated a Message-ID that had arrived before."""
    return sum(count - 1 for count in smtp.message_ids().values())


def assert_every_message_arrived(deployment: Deployment, smtp: FaultySmtp) -> None:
    """Each message the test queued is marked sent and arrived under its own Message-ID;
    whatever arrived is marked sent; nothing is left queued."""
    rows = deployment.rows()
    ours = [row for row in rows if row.dedupe_key.startswith("fault:")]
    arrived = smtp.message_ids()
    missing = [row.dedupe_key for row in ours if row.message_id not in arrived]
    assert missing == [], f"{len(missing)} messages never arrived: {missing[:5]}"
    assert len(ours) == MESSAGES and {row.status for row in ours} == {OutboxStatus.SENT}
    assert set(arrived) == {row.message_id for row in rows if row.status is OutboxStatus.SENT}
    assert [row.dedupe_key for row in rows if row.status is OutboxStatus.QUEUED] == []


# --- 1. kill -9 in the middle of a batch -------------------------------------------------------


def test_sender_killed_mid_batch_loses_nothing_and_repeats_only_what_it_had_claimed(deploy):
    with FaultySmtp(Faults(delay=0.005)) as smtp:
        deployment = deploy(smtp, migrate_with_wg=True)
        deployment.enqueue(MESSAGES, now=QUEUED_AT)

        sender = deployment.start("tick", "--now", FIRST_TICK.isoformat())
        arrived_before_kill = smtp.wait_for(40)
        output = stop(sender, signal.SIGKILL)
        assert sender.returncode == -signal.SIGKILL, output
        assert 40 <= arrived_before_kill < MESSAGES
        held = {row.message_id for row in deployment.rows() if row.lease_owner}
        assert held, "the killed sender held no lease: it was not killed mid-batch"

        smtp.faults.delay = 0
        restarted = deployment.wg("tick", "--now", after_the_lease())

        assert not re.search(r"\bsent 0,", restarted.stdout)  # it took over the expired lease
        assert_every_message_arrived(deployment, smtp)
        repeated = {mid for mid, count in smtp.message_ids().items() if count > 1}
        assert repeated <= held  # only what the killed sender had claimed can arrive twice
        health = deployment.health()
        assert health["counts"]["queued"] == 0 and health["due"] == 0
        assert health["counts"]["sent"] == len(smtp.message_ids()) >= MESSAGES


def test_sender_killed_mid_batch_repeats_at_most_one_message_per_connection(deploy_on_sqlite):
    with FaultySmtp(Faults(delay=0.005)) as smtp:
        deployment = deploy_on_sqlite(smtp)
        deployment.enqueue(MESSAGES, now=QUEUED_AT)

        sender = deployment.start("tick", "--now", FIRST_TICK.isoformat())
        smtp.wait_for(6)  # a few messages in: well within any sensible marking delay
        output = stop(sender, signal.SIGKILL)
        assert sender.returncode == -signal.SIGKILL, output
        smtp.faults.delay = 0
        deployment.wg("tick", "--now", after_the_lease())

        assert_every_message_arrived(deployment, smtp)
        assert duplicates(smtp) <= CONNECTIONS, f"{duplicates(smtp)} messages arrived twice"


# --- 2. two senders at once --------------------------------------------------------------------


def test_two_senders_started_together_deliver_every_message_exactly_once(deploy):
    # One connection per sender, and the server answers no DATA before both have connected:
    # the two processes certainly claim and send at the same time.
    with FaultySmtp(Faults(delay=0.002, hold_until_sessions=2)) as smtp:
        deployment = deploy(smtp, WG_SMTP_CONNECTIONS="1")
        deployment.enqueue(MESSAGES, now=QUEUED_AT)

        senders = [deployment.start("tick", "--now", FIRST_TICK.isoformat()) for _ in range(2)]
        outputs = [finish(sender) for sender in senders]

        sent = [int(re.search(r"\bsent (\d+),", output).group(1)) for output in outputs]
        assert sum(sent) == len(smtp.messages) and min(sent) > 0, outputs
        assert_every_message_arrived(deployment, smtp)
        assert set(smtp.message_ids().values()) == {1}
        assert sorted(m.rcpt_tos[0] for m in smtp.messages if "@riverbank." in m.rcpt_tos[0]) == [
            f"member{n:03}@riverbank.example" for n in range(MESSAGES)
        ]


def test_one_tick_with_two_sender_processes_delivers_every_message_exactly_once(deploy):
    # The server answers no DATA before both sender processes have connected: they certainly
    # claim and send at the same time, each under its own lease.
    with FaultySmtp(Faults(delay=0.002, hold_until_sessions=2)) as smtp:
        deployment = deploy(smtp, WG_SMTP_CONNECTIONS="1", WG_SENDERS="2")
        deployment.enqueue(MESSAGES, now=QUEUED_AT)

        output = finish(deployment.start("tick", "--now", FIRST_TICK.isoformat()))

        assert f"sent {MESSAGES}," in output, output
        assert len(smtp.sessions) >= 2
        assert_every_message_arrived(deployment, smtp)
        assert set(smtp.message_ids().values()) == {1}


# --- 3. a misbehaving SMTP server ----------------------------------------------------------------

PLAIN = [f"member{n:02}@riverbank.example" for n in range(40)]
DROPPED = frozenset(PLAIN[4::7])  # the connection is lost in their first DATA
REFUSED = PLAIN[5::11]  # 550 at RCPT TO
LATE = [f"late{n}@riverbank.example" for n in range(10)]  # queued while the server is down
INVITEES = [f"rep{n}@memory.example" for n in range(3)]


@pytest.fixture
def misbehaving_smtp() -> Iterator[FaultySmtp]:
    faults = Faults(
        temporary_failure_every=5,
        drop_once=DROPPED,
        refuse={address: f"550 5.1.1 <{address}>: no such user" for address in REFUSED},
    )
    with FaultySmtp(faults) as server:
        yield server


@pytest.fixture
def app_settings(misbehaving_smtp: FaultySmtp) -> dict[str, str]:
    """The `app` of this module sends to the misbehaving server."""
    return {"WG_SMTP_PORT": str(misbehaving_smtp.port), "WG_SMTP_CONNECTIONS": str(CONNECTIONS)}


def queue(app: Flask, now: datetime, addresses: list[str]) -> None:
    with app.app_context(), session_scope(app) as db:
        for address in addresses:
            outbox.enqueue(
                db,
                JOIN_WELCOME,
                to=address,
                to_name="Member",
                lang="en",
                dedupe_key=f"welcome:{address}",
                context={"organisation_name": "Riverbank Survivors Network"},
                now=now,
            )


def settle(deliver: Callable[[], TickReport], clock: Callable, db: Session) -> None:
    """Deliver, moving the clock to each next retry, until nothing is queued any more."""
    for _ in range(15):
        deliver()
        db.expire_all()
        waiting = db.scalars(
            select(OutboundEmail.not_before).where(OutboundEmail.status == OutboxStatus.QUEUED)
        ).all()
        if not waiting:
            return
        # At least a minute on: mail held by a fault of ours is tried again once a minute.
        clock.set(max(clock() + timedelta(minutes=1), min(waiting)))
    raise AssertionError("the outbox never settled")


def test_misbehaving_server_gets_deliverable_mail_once_and_meeting_mail_expires_meanwhile(
    app, db, clock, deliver, misbehaving_smtp, make_member
):
    smtp = misbehaving_smtp
    clock.set(local(2026, 12, 2, 8, 30))  # in the morning window, when meeting mail goes out
    queue(app, clock(), PLAIN)

    settle(deliver, clock, db)  # through 451s, dropped connections and 550s

    assert smtp.temporary_failures >= 5 and smtp.dropped == DROPPED
    assert {address: smtp.refusals[address] for address in REFUSED} == dict.fromkeys(REFUSED, 1)

    smtp.stop()  # the server goes down...
    for address in INVITEES:
        make_member(address, organisation="Memory Association")
    add_meeting(app, clock, local(2026, 12, 2, 10, 0))
    queue(app, clock(), LATE)
    down = deliver()  # ...while the invitations and other mail fall due
    # The server being down is our fault, not the members': the mail waits, uncounted.
    assert (down.delivery.sent, down.delivery.retried, down.delivery.failed) == (0, 0, 0)
    assert down.delivery.held >= 1 and "cannot connect" in down.delivery.fault
    db.expire_all()
    waiting = db.scalars(select(OutboundEmail).where(OutboundEmail.recipient.in_(LATE))).all()
    assert {(row.status, row.attempts) for row in waiting} == {(OutboxStatus.QUEUED, 0)}
    clock.set(local(2026, 12, 2, 10, 30))  # the meeting began while the server was down
    assert deliver().delivery.expired == len(INVITEES)
    smtp.start()  # ...and it is back, on the same port

    settle(deliver, clock, db)

    db.expire_all()
    everything = db.scalars(select(OutboundEmail)).all()
    rows = {row.recipient: row for row in everything}
    deliverable = sorted({*PLAIN, *LATE} - set(REFUSED))
    assert [rows[address].status for address in deliverable] == [OutboxStatus.SENT] * len(
        deliverable
    )
    sent = {row.message_id for row in everything if row.status is OutboxStatus.SENT}
    arrived = smtp.message_ids()
    assert arrived.keys() == sent  # a retry keeps its Message-ID; nothing else arrived
    assert set(arrived.values()) == {1}  # and nothing arrived twice
    for address in REFUSED:  # refused for good: failed at once, never asked again
        assert (rows[address].status, rows[address].attempts) == (OutboxStatus.FAILED, 1)
        assert rows[address].last_error.startswith("550 5.1.1")
    for address in INVITEES:  # not sent once the meeting began, and the reason is kept
        invitation = rows[address]
        assert invitation.dedupe_key.startswith("invite:")
        assert invitation.status is OutboxStatus.EXPIRED
        assert invitation.last_error.startswith("not sent: its time ended at 2026-12-02T03:00")
    assert not any(smtp_mail.rcpt_tos[0] in INVITEES for smtp_mail in smtp.messages)
    health = outbox.health(db, now=clock())
    assert health.counts["queued"] == 0 and health.due == 0
    assert health.counts["sent"] == len(sent)
    assert health.counts["failed"] == len(REFUSED) and health.counts["expired"] >= len(INVITEES)
    expired = [row for row in everything if row.status is OutboxStatus.EXPIRED]
    assert all(row.last_error.startswith("not sent: ") for row in expired)  # each says why
    failed = {e["recipient"]: e["error"] for e in health.last_errors if e["status"] == "failed"}
    assert failed.keys() == set(REFUSED) and all("550" in e for e in failed.values())


# --- 5. SIGTERM to `wg run` while it delivers ----------------------------------------------------


def _wait_until_serving(port: int, process: subprocess.Popen[str]) -> None:
    for _ in range(300):
        assert process.poll() is None, "wg run ended early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("wg run never answered /healthz")


def test_wg_run_stopped_by_sigterm_mid_batch_exits_cleanly_and_leaves_nothing_leased(deploy):
    with FaultySmtp(Faults(delay=0.01)) as smtp:
        deployment = deploy(smtp)
        deployment.enqueue(MESSAGES, now=datetime.now(UTC) - timedelta(minutes=1))
        port = free_port()

        server = deployment.start("run", "--port", str(port))
        try:
            _wait_until_serving(port, server)
            smtp.wait_for(20)
        finally:
            smtp.faults.delay = 0  # let it finish what it has in hand quickly
            output = stop(server, signal.SIGTERM)
        assert server.returncode == 0, output

        rows = deployment.rows()
        waiting = [row for row in rows if row.status is OutboxStatus.QUEUED]
        assert 0 < len(waiting) < MESSAGES, "SIGTERM did not arrive while it was delivering"
        leased = [row.dedupe_key for row in waiting if row.lease_owner or row.lease_expires_at]
        assert leased == []
        arrived = smtp.message_ids()
        assert all(row.message_id in arrived for row in rows if row.status is OutboxStatus.SENT)

        # The next sender, right away; two minutes on, should a connection have timed out
        # on this busy machine and made the sender wait its minute before trying again.
        soon = datetime.now(ZONE).replace(tzinfo=None) + timedelta(minutes=2)
        deployment.wg("tick", "--now", soon.isoformat())

        assert_every_message_arrived(deployment, smtp)
        assert duplicates(smtp) <= CONNECTIONS
