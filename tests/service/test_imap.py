"""`wg inbound poll` against a real Dovecot: every message processed once, filed, never lost."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from imapclient import DELETED, SEEN, IMAPClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from emails.transport import Transport
from scheduler.runner import add_jobs
from service.cli import cli
from service.config import settings
from service.db import session_scope
from service.inbound import imap
from service.inbound.imap import PollError, poll_once
from service.meetings import operations as meetings
from service.meetings.operations import MeetingDetails
from service.models import AnswerChannel, InboundMessage, InboundOutcome, Invitation, Rsvp
from tests.dovecot import DOVECOT, INBOX_PREFIX_NAMESPACE, DovecotServer, Mailbox

SAMPLES = Path(__file__).parents[1] / "emails" / "inbound_samples"
PHNOM_PENH = ZoneInfo("Asia/Phnom_Penh")
PROCESSED, ATTENTION = "processed", "needs-attention"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def start_dovecot(**options: str) -> DovecotServer:
    if not Path(DOVECOT).exists():
        reason = f"{DOVECOT} is missing: apt-get install dovecot-imapd"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = DovecotServer(**options)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dovecot_with_inbox_prefix() -> Iterator[DovecotServer]:
    """A second server whose personal namespace is "INBOX." (as on Courier or Cyrus)."""
    server = start_dovecot(namespace=INBOX_PREFIX_NAMESPACE)
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Mailbox:
    return dovecot.add_mailbox()


@pytest.fixture
def imap_password(mailbox: Mailbox) -> str:
    """The password the app logs in with; a test may parametrize a wrong one."""
    return mailbox.password


@pytest.fixture
def trusted_test_ca(monkeypatch: pytest.MonkeyPatch, dovecot: DovecotServer) -> None:
    """ssl.create_default_context() trusts the test CA too, through SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.ca_path))


@pytest.fixture
def app_settings(
    dovecot: DovecotServer, mailbox: Mailbox, imap_password: str, trusted_test_ca: None
) -> dict[str, str]:
    """The app reads `mailbox` on the test Dovecot over IMAPS."""
    return {
        "WG_IMAP_HOST": "127.0.0.1",
        "WG_IMAP_PORT": str(dovecot.imaps_port),
        "WG_IMAP_USERNAME": mailbox.username,
        "WG_IMAP_PASSWORD": imap_password,
    }


def poll(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(cli, ["inbound", "poll"])


def stored(db) -> dict[str, InboundOutcome]:  # type: ignore[no-untyped-def]
    return {row.message_id: row.outcome for row in db.scalars(select(InboundMessage))}


def folder_sizes(mailbox: Mailbox) -> dict[str, int]:
    with mailbox.client() as client:
        return {
            name: client.folder_status(name, ["MESSAGES"])[b"MESSAGES"]
            for _flags, _delimiter, name in client.list_folders()
        }


OUT_OF_OFFICE = "<CAFx3kT9vY1mQ5pL8wZ2nB6cR0sD4eG7hJ1kN3aV9xU5iO2mW8E@mail.gmail.example>"
PLAIN_REPLY = "<CAH4x=q9Yx2bV7mK1pZ3eR5tW8uN0aS6dF4gJ2hL9cX7vB1nM3Q@mail.gmail.example>"
MALFORMED = "<broken-1@riverbank.example>"
BOUNCE = "<4Q9A1d5F7gz9rxL@mail.wg.example>"


def test_poll_processes_every_message_and_files_it_by_outcome(app, db, mailbox):
    mailbox.append(
        sample("plain_reply_yes_en.eml"),  # a reply to no invitation of this database
        sample("out_of_office_gmail.eml"),
        sample("malformed_mime.eml"),
        sample("postfix_bounce.eml"),  # for an address nobody here knows
    )

    result = poll(app)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "processed 0, ignored 1, needs attention 3, already processed 0, errors 0"
    )
    assert mailbox.message_ids("INBOX") == []
    assert mailbox.message_ids(PROCESSED) == [OUT_OF_OFFICE]
    assert mailbox.message_ids(ATTENTION) == sorted([PLAIN_REPLY, MALFORMED, BOUNCE])
    assert stored(db) == {
        OUT_OF_OFFICE: InboundOutcome.IGNORED,
        PLAIN_REPLY: InboundOutcome.ATTENTION,
        MALFORMED: InboundOutcome.ATTENTION,
        BOUNCE: InboundOutcome.ATTENTION,
    }
    # Filed mail is read; what needs a person still shows as unread.
    assert all(SEEN in flags for flags in mailbox.flags(PROCESSED))
    assert not any(SEEN in flags for flags in mailbox.flags(ATTENTION))


def test_a_second_poll_processes_nothing_and_a_copy_is_filed_as_a_duplicate(app, db, mailbox):
    mailbox.append(sample("out_of_office_gmail.eml"), sample("malformed_mime.eml"))
    assert poll(app).exit_code == 0

    again = poll(app)
    assert again.stdout.strip() == (
        "processed 0, ignored 0, needs attention 0, already processed 0, errors 0"
    )

    mailbox.append(sample("out_of_office_gmail.eml"))  # delivered twice, byte for byte
    third = poll(app)

    assert third.stdout.strip() == (
        "processed 0, ignored 0, needs attention 0, already processed 1, errors 0"
    )
    assert mailbox.message_ids("INBOX") == []
    assert mailbox.message_ids(PROCESSED) == [OUT_OF_OFFICE, OUT_OF_OFFICE]
    assert len(db.scalars(select(InboundMessage)).all()) == 2


@pytest.mark.parametrize("server_can_move", [True, False], ids=["MOVE", "COPY-and-UID-EXPUNGE"])
def test_no_message_is_ever_deleted(app, db, mailbox, monkeypatch, server_can_move):
    if not server_can_move:
        has_capability = IMAPClient.has_capability
        monkeypatch.setattr(
            IMAPClient,
            "has_capability",
            lambda client, name: name.upper() != "MOVE" and has_capability(client, name),
        )
    monkeypatch.setattr(imap, "BATCH_MESSAGES", 5)  # several fetches, as with a full inbox
    corpus = sorted(SAMPLES.glob("*.eml"))
    mailbox.append(*(path.read_bytes() for path in corpus))
    # A person marked this one for deletion in their mail program: not ours to touch.
    mailbox.append(
        b"Subject: spam\r\nMessage-ID: <flagged@example.org>\r\n\r\nbuy\r\n", flags=(DELETED,)
    )

    result = poll(app)

    assert result.exit_code == 0, result.output
    sizes = folder_sizes(mailbox)
    assert sizes["INBOX"] == 1
    assert mailbox.message_ids("INBOX") == ["<flagged@example.org>"]
    assert sizes[PROCESSED] + sizes[ATTENTION] == len(corpus)
    assert len(db.scalars(select(InboundMessage)).all()) == len(corpus)


def test_a_message_too_large_to_read_is_filed_unread_for_a_person(app, db, mailbox, monkeypatch):
    monkeypatch.setattr(imap, "LARGEST_MESSAGE", 2000)
    mailbox.append(sample("out_of_office_gmail.eml"), sample("postfix_bounce.eml"))  # 989, 2967

    result = poll(app)

    assert result.stdout.strip() == (
        "processed 0, ignored 1, needs attention 1, already processed 0, errors 0"
    )
    assert mailbox.message_ids(ATTENTION) == [BOUNCE]
    assert not any(SEEN in flags for flags in mailbox.flags(ATTENTION))
    assert stored(db) == {OUT_OF_OFFICE: InboundOutcome.IGNORED}


@pytest.mark.parametrize("imap_password", ["not-the-password"])
def test_a_wrong_password_fails_with_one_clear_line_and_moves_nothing(app, db, mailbox):
    mailbox.append(sample("out_of_office_gmail.eml"))

    result = poll(app)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert f"IMAP login as {mailbox.username} at 127.0.0.1:" in result.stderr
    assert "Authentication failed" in result.stderr
    assert mailbox.folders() == ["INBOX"]
    assert mailbox.message_ids("INBOX") == [OUT_OF_OFFICE]
    assert stored(db) == {}


def test_a_server_certificate_from_an_unknown_ca_is_refused(app, db, mailbox, monkeypatch):
    mailbox.append(sample("out_of_office_gmail.eml"))
    monkeypatch.delenv("SSL_CERT_FILE")  # back to the system's CAs, which never signed it

    result = poll(app)

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "TLS certificate not trusted" in result.stderr
    assert mailbox.message_ids("INBOX") == [OUT_OF_OFFICE]
    assert stored(db) == {}


def test_starttls_is_used_before_login_and_a_private_ca_can_be_given(
    app, db, clock, dovecot, mailbox, monkeypatch
):
    monkeypatch.delenv("SSL_CERT_FILE")
    mailbox.append(sample("out_of_office_gmail.eml"))
    # The plain port of this Dovecot refuses any login before TLS (ssl = required).
    over_starttls = dataclasses.replace(settings(app), imap_port=dovecot.starttls_port)

    report = poll_once(app, over_starttls, now=clock, cafile=str(dovecot.ca_path), starttls=True)

    assert (report.ignored, report.errors) == (1, 0)
    assert mailbox.message_ids(PROCESSED) == [OUT_OF_OFFICE]


def test_folders_are_made_inside_the_servers_personal_namespace(
    app, db, clock, monkeypatch, dovecot_with_inbox_prefix
):
    server = dovecot_with_inbox_prefix
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))
    mailbox = server.add_mailbox()
    mailbox.append(sample("out_of_office_gmail.eml"), sample("malformed_mime.eml"))
    there = dataclasses.replace(
        settings(app),
        imap_port=server.imaps_port,
        imap_username=mailbox.username,
        imap_password=mailbox.password,
    )

    report = poll_once(app, there, now=clock)

    assert (report.ignored, report.attention) == (1, 1)
    assert mailbox.folders() == ["INBOX", "INBOX.needs-attention", "INBOX.processed"]
    assert mailbox.message_ids("INBOX.processed") == [OUT_OF_OFFICE]
    assert mailbox.message_ids("INBOX.needs-attention") == [MALFORMED]


def test_a_message_that_fails_to_process_stays_in_the_inbox_for_the_next_poll(
    app, db, mailbox, monkeypatch
):
    mailbox.append(sample("out_of_office_gmail.eml"), sample("malformed_mime.eml"))
    real = imap.process_message
    calls = []

    def fails_first(session, raw, *, now):  # type: ignore[no-untyped-def]
        calls.append(raw)
        if len(calls) == 1:
            raise RuntimeError("a parser bug")
        return real(session, raw, now=now)

    monkeypatch.setattr(imap, "process_message", fails_first)

    first = poll(app)

    assert first.exit_code == 1
    assert "errors 1" in first.stdout
    assert mailbox.message_ids("INBOX") == [OUT_OF_OFFICE]
    assert not any(SEEN in flags for flags in mailbox.flags("INBOX"))
    assert stored(db) == {MALFORMED: InboundOutcome.ATTENTION}

    second = poll(app)

    assert second.exit_code == 0
    assert mailbox.message_ids("INBOX") == []
    assert stored(db)[OUT_OF_OFFICE] is InboundOutcome.IGNORED


def test_an_unreachable_database_stops_the_poll_and_leaves_the_mail(app, db, mailbox, monkeypatch):
    mailbox.append(sample("out_of_office_gmail.eml"), sample("malformed_mime.eml"))

    def database_down(session, raw, *, now):  # type: ignore[no-untyped-def]
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(imap, "process_message", database_down)

    result = poll(app)

    assert result.exit_code == 1
    assert result.stdout.strip() == (
        "processed 0, ignored 0, needs attention 0, already processed 0, errors 1; "
        "stopped: the database is unavailable"
    )
    assert mailbox.message_ids("INBOX") == sorted([OUT_OF_OFFICE, MALFORMED])


@pytest.mark.parametrize("app_settings", [{}])
def test_poll_without_an_imap_host_says_so_in_one_line(app):
    result = poll(app)

    assert result.exit_code == 1
    assert result.stderr == (
        "wg inbound poll: WG_IMAP_HOST is not set, so there is no mailbox to poll\n"
    )


def test_a_plain_reply_to_a_real_invitation_records_the_members_answer(
    app, db, clock, deliver, smtp_server, make_member, mailbox
):
    member = make_member("sophea@riverbank.example", name="Sophea")
    clock.set(datetime(2027, 1, 5, 9, 0, tzinfo=PHNOM_PENH))
    details = MeetingDetails(
        title_en="Monthly meeting",
        title_km="កិច្ចប្រជុំប្រចាំខែ",
        starts_at=datetime(2027, 1, 14, 14, 0, tzinfo=PHNOM_PENH),
        duration_minutes=120,
        location="Documentation centre, Phnom Penh",
        online_url="https://meet.example/wg",
        agenda_en="1. Reparations projects",
        agenda_km="១. គម្រោងសំណង",
    )
    with app.app_context(), session_scope(app) as session:
        meetings.add_meeting(session, details, now=clock())
    deliver()
    invitation_mail = smtp_server.single_message_to(member.email)

    reply = EmailMessage()
    reply["From"] = f"Sophea <{member.email}>"
    reply["To"] = invitation_mail["Reply-To"] or invitation_mail["From"]
    reply["Subject"] = f"Re: {invitation_mail.subject}"
    reply["Date"] = format_datetime(clock() + timedelta(hours=2))
    reply["Message-ID"] = "<reply-1@riverbank.example>"
    reply["In-Reply-To"] = invitation_mail["Message-ID"]
    reply["References"] = invitation_mail["Message-ID"]
    quoted = "\n".join(f"> {line}" for line in invitation_mail.text.splitlines()[:5])
    reply.set_content(f"Yes, I will attend.\n\nOn 5 Jan 2027, Working Group wrote:\n{quoted}\n")
    mailbox.append(reply.as_bytes())
    clock.advance(hours=2)

    result = poll(app)

    assert result.stdout.strip() == (
        "processed 1, ignored 0, needs attention 0, already processed 0, errors 0"
    )
    invitation = db.scalars(select(Invitation)).one()
    assert invitation.answer is Rsvp.YES
    assert invitation.answered_via is AnswerChannel.EMAIL
    assert stored(db) == {"<reply-1@riverbank.example>": InboundOutcome.PROCESSED}
    assert mailbox.message_ids(PROCESSED) == ["<reply-1@riverbank.example>"]


def test_the_scheduler_polls_the_mailbox_every_three_minutes(app, db, mailbox, caplog):
    mailbox.append(sample("out_of_office_gmail.eml"))
    scheduler = BackgroundScheduler(timezone="UTC")
    transport = Transport(settings(app).smtp())
    add_jobs(scheduler, app, transport)
    job = scheduler.get_job("inbound")

    assert job.trigger.interval == timedelta(minutes=3)
    assert (job.max_instances, job.coalesce) == (1, True)
    with caplog.at_level(logging.INFO, logger="scheduler.runner"):
        job.func()
    assert mailbox.message_ids(PROCESSED) == [OUT_OF_OFFICE]
    assert "inbound poll: processed 0, ignored 1" in caplog.text
    transport.close()


@pytest.mark.parametrize("imap_password", ["not-the-password"])
def test_a_failing_scheduled_poll_is_logged_and_reported_not_raised(
    app, client, mailbox, caplog
):
    scheduler = BackgroundScheduler(timezone="UTC")
    transport = Transport(settings(app).smtp())
    add_jobs(scheduler, app, transport)

    with caplog.at_level(logging.ERROR):
        scheduler.get_job("inbound").func()

    assert "IMAP is not working since" in caplog.text and "IMAP login as" in caplog.text
    health = client.get("/healthz").json
    assert health["status"] == "degraded" and "IMAP login as" in health["reason"]
    transport.close()


@pytest.mark.parametrize("app_settings", [{}])
def test_the_scheduler_has_no_mailbox_job_without_an_imap_host(app):
    scheduler = BackgroundScheduler(timezone="UTC")
    transport = Transport(settings(app).smtp())
    add_jobs(scheduler, app, transport)

    assert scheduler.get_job("inbound") is None
    assert scheduler.get_job("tick") is not None
    transport.close()


def test_poll_once_refuses_to_poll_the_folder_it_files_into(app, clock):
    into_processed = dataclasses.replace(settings(app), imap_folder=PROCESSED)

    with pytest.raises(PollError, match="WG_IMAP_FOLDER"):
        poll_once(app, into_processed, now=clock)


def test_poison_messages_are_filed_for_a_person_not_retried_every_poll(app, db, mailbox):
    nul_subject = (
        b"From: Dara <dara@riverbank.example>\r\nSubject: Re: meeting \x00\x1b[2J\r\n"
        b"Message-ID: <poison-1@riverbank.example>\r\nIn-Reply-To: <unknown@wg.example>\r\n"
        b"\r\nYes.\r\n"
    )
    many = " ".join(f"<thread-{n}@lists.example>" for n in range(70_000))
    long_thread = (
        "From: dara@riverbank.example\r\nSubject: Re: meeting\r\n"
        f"Message-ID: <poison-2@riverbank.example>\r\nReferences: {many}\r\n\r\nYes.\r\n"
    ).encode()
    mailbox.append(nul_subject, long_thread)

    result = poll(app)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "processed 0, ignored 0, needs attention 2, already processed 0, errors 0"
    )
    assert mailbox.message_ids("INBOX") == []
    assert mailbox.message_ids(ATTENTION) == [
        "<poison-1@riverbank.example>",
        "<poison-2@riverbank.example>",
    ]
    # (Dovecot stores a NUL as 0x80; whatever arrives, no control character is kept.)
    subjects = [row.subject for row in db.scalars(select(InboundMessage))]
    assert all(subject.startswith("Re: meeting") for subject in subjects)
    assert not any(char in subject for subject in subjects for char in "\x00\x1b")
