"""Polling the IMAP mailbox: process each waiting message once, then file it away.

Each message in WG_IMAP_FOLDER is fetched with BODY.PEEK[] (its \\Seen flag stays as it
was), processed in a transaction of its own, and moved only after that commit: to
`processed` (acted on, ignored, or processed before; marked \\Seen) or to `needs-attention`
(a person should read it; left unread). Both folders are made when missing, inside the
server's personal namespace (`INBOX.processed` where that namespace is `INBOX.`).

No UID or UIDVALIDITY is stored. Every processed message leaves the folder, so the folder
only ever holds what is still to do, and each poll takes every undeleted message in it;
a new UIDVALIDITY (a rebuilt index, a restored mailbox) changes nothing. If the poll dies
between the commit and the move, the next poll finds the message again, `process_message`
knows it (digest or Message-ID) and it is moved then, never acted on twice.

Mail is never deleted. Without MOVE a message is copied, flagged \\Deleted and expunged by
its UID alone (UIDPLUS); without UIDPLUS it stays flagged for the server or a person to
expunge, because a plain EXPUNGE would also remove what a person flagged. Messages already
flagged \\Deleted are left alone.

A message that can never be processed (input the database refuses, a bug it trips) is filed
in `needs-attention` with the reason, as `process_message` records it, so that it is not
tried again every poll. One that failed for another reason stays in the folder for the next
poll; a database that cannot be reached stops the poll, since every other message would fail
too.

TLS is verified whenever it is used: WG_IMAP_SECURITY `ssl` speaks TLS from the first byte,
`starttls` upgrades before logging in, `none` is for a mailbox on the same machine; unset, port
143 means STARTTLS and any other port TLS. A private CA (WG_IMAP_CA_FILE) is trusted besides
the system's.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from flask import Flask
from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy.exc import InterfaceError, OperationalError

from emails.transport import tls_context
from service.config import Settings
from service.db import session_scope
from service.inbound.operations import process_message
from service.models import InboundOutcome

log = logging.getLogger(__name__)

PROCESSED_FOLDER = "processed"
ATTENTION_FOLDER = "needs-attention"
STARTTLS_PORT = 143
TIMEOUT_SECONDS = 60
# As for `wg inbound read`: a larger message is filed for a person, not parsed.
LARGEST_MESSAGE = 25 * 1024 * 1024
# Bodies are fetched a few at a time, so a mailbox of large attachments stays in memory
# a batch at a time, and a small one costs a round trip per batch, not per message.
BATCH_MESSAGES = 25
BATCH_BYTES = 10 * 1024 * 1024
SIZES_AT_ONCE = 500


class PollError(Exception):
    """The mailbox could not be read (not configured, unreachable, refused); one line."""


@dataclass
class PollReport:
    """What one poll did with the messages it found."""

    processed: int = 0
    ignored: int = 0
    attention: int = 0
    duplicates: int = 0
    errors: int = 0
    stopped: str = ""  # why the poll ended before the last message, if it did

    @property
    def handled(self) -> int:
        return self.processed + self.ignored + self.attention + self.duplicates + self.errors

    def summary(self) -> str:
        text = (
            f"processed {self.processed}, ignored {self.ignored}, "
            f"needs attention {self.attention}, already processed {self.duplicates}, "
            f"errors {self.errors}"
        )
        return f"{text}; stopped: {self.stopped}" if self.stopped else text


def poll_once(
    app: Flask,
    settings: Settings,
    *,
    now: Callable[[], datetime],
    cafile: str | None = None,
    starttls: bool | None = None,
) -> PollReport:
    """Process and file every message waiting in the mailbox; raise PollError if unreadable.

    `cafile` trusts a private CA besides the system's; `starttls` overrides WG_IMAP_SECURITY.
    """
    if not settings.imap_host:
        raise PollError("WG_IMAP_HOST is not set, so there is no mailbox to poll")
    if not settings.imap_username:
        raise PollError("WG_IMAP_USERNAME is not set")
    where = f"{settings.imap_host}:{settings.imap_port}"
    report = PollReport()
    try:
        with _connect(settings, cafile, starttls) as client:
            try:
                client.login(settings.imap_username, settings.imap_password)
            except LoginError as exc:
                raise PollError(
                    f"IMAP login as {settings.imap_username} at {where} failed: {_text(exc)}"
                ) from None
            folders = _Destinations.prepare(client, settings.imap_folder)
            with app.app_context():
                _poll(app, client, settings.imap_folder, folders, now, report)
    except ssl.SSLCertVerificationError as exc:
        raise PollError(
            f"IMAP server {where}: TLS certificate not trusted: {exc.verify_message}"
        ) from None
    except (OSError, IMAPClientError) as exc:  # ssl.SSLError and timeouts are OSErrors
        done = f" (so far: {report.summary()})" if report.handled else ""
        raise PollError(f"IMAP server {where}: {_text(exc)}{done}") from None
    return report


def _connect(settings: Settings, cafile: str | None, starttls: bool | None) -> IMAPClient:
    context = tls_context(cafile or settings.imap_ca_file or None)
    security = settings.imap_security
    if starttls is not None:
        security = "starttls" if starttls else "ssl"
    client = IMAPClient(
        settings.imap_host,
        port=settings.imap_port,
        ssl=security == "ssl",
        ssl_context=context,
        timeout=TIMEOUT_SECONDS,
    )
    if security == "starttls":
        try:
            client.starttls(context)  # before any credential is sent
        except BaseException:
            client.shutdown()
            raise
    return client


def _text(exc: BaseException) -> str:
    """imaplib's messages are often a repr of bytes: b'[AUTHENTICATIONFAILED] ...'."""
    text = str(exc)
    if text[:2] in ("b'", 'b"') and text[-1:] == text[1]:
        text = text[2:-1]
    return " ".join(text.split()) or type(exc).__name__


@dataclass(frozen=True)
class _Destinations:
    processed: str
    attention: str

    @classmethod
    def prepare(cls, client: IMAPClient, source: str) -> _Destinations:
        """The two folders, named inside the personal namespace and made when missing."""
        prefix = ""
        if client.has_capability("NAMESPACE"):
            personal = client.namespace().personal
            if personal:
                prefix, delimiter = personal[0]
                if prefix and delimiter and not prefix.endswith(delimiter):
                    prefix += delimiter
        found = cls(prefix + PROCESSED_FOLDER, prefix + ATTENTION_FOLDER)
        if source in (found.processed, found.attention):
            raise PollError(f"WG_IMAP_FOLDER: {source!r} is where processed mail is filed")
        for folder in (found.processed, found.attention):
            _ensure_folder(client, folder)
        return found

    def for_outcome(self, outcome: InboundOutcome | None) -> str:
        return self.attention if outcome is InboundOutcome.ATTENTION else self.processed


def _ensure_folder(client: IMAPClient, folder: str) -> None:
    if client.folder_exists(folder):
        return
    try:
        client.create_folder(folder)
    except IMAPClientError:
        if not client.folder_exists(folder):  # else another poll made it a moment ago
            raise
    try:
        client.subscribe_folder(folder)  # so that mail programs show it
    except IMAPClientError as exc:
        log.info("could not subscribe to %s: %s", folder, _text(exc))


def _poll(
    app: Flask,
    client: IMAPClient,
    source: str,
    destinations: _Destinations,
    now: Callable[[], datetime],
    report: PollReport,
) -> None:
    try:
        client.select_folder(source)
    except IMAPClientError as exc:
        raise PollError(f"WG_IMAP_FOLDER: cannot open {source!r}: {_text(exc)}") from None
    uids = sorted(client.search(["UNDELETED"]))
    for start in range(0, len(uids), SIZES_AT_ONCE):
        chunk = uids[start : start + SIZES_AT_ONCE]
        sizes = {
            uid: data.get(b"RFC822.SIZE", 0)
            for uid, data in client.fetch(chunk, ["RFC822.SIZE"]).items()
        }
        for uid in [uid for uid in chunk if sizes.get(uid, 0) > LARGEST_MESSAGE]:
            log.warning("message UID %s is over %d bytes; filed unread", uid, LARGEST_MESSAGE)
            _move(client, uid, destinations.attention, seen=False)
            report.attention += 1
        wanted = [uid for uid in chunk if uid in sizes and sizes[uid] <= LARGEST_MESSAGE]
        for batch in _batches(wanted, sizes):
            bodies = client.fetch(batch, ["BODY.PEEK[]"])
            for uid in batch:
                raw = bodies.get(uid, {}).get(b"BODY[]")
                if raw is None:
                    continue  # gone since the search (another poll, or a person)
                if not _process(app, client, uid, raw, destinations, now, report):
                    return


def _batches(uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
    batch: list[int] = []
    total = 0
    for uid in uids:
        if batch and (len(batch) >= BATCH_MESSAGES or total + sizes[uid] > BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += sizes[uid]
    if batch:
        yield batch


def _process(
    app: Flask,
    client: IMAPClient,
    uid: int,
    raw: bytes,
    destinations: _Destinations,
    now: Callable[[], datetime],
    report: PollReport,
) -> bool:
    """Process one message and file it; False when the poll should stop."""
    try:
        with session_scope(app) as db:
            outcome = process_message(db, raw, now=now())
    except (OperationalError, InterfaceError) as exc:
        log.error("database unavailable; message UID %s stays for the next poll: %s", uid, exc)
        report.errors += 1
        report.stopped = "the database is unavailable"
        return False
    except Exception:
        log.exception("could not process message UID %s; it stays for the next poll", uid)
        report.errors += 1
        return True
    if outcome.outcome is None:
        report.duplicates += 1
    elif outcome.outcome is InboundOutcome.ATTENTION:
        report.attention += 1
    elif outcome.outcome is InboundOutcome.IGNORED:
        report.ignored += 1
    else:
        report.processed += 1
    folder = destinations.for_outcome(outcome.outcome)
    log.info("UID %s -> %s: %s", uid, folder, outcome.summary())
    _move(client, uid, folder, seen=folder == destinations.processed)
    return True


def _move(client: IMAPClient, uid: int, folder: str, *, seen: bool) -> None:
    """Move one message out of the selected folder, deleting nothing else."""
    if seen:
        client.add_flags([uid], [SEEN], silent=True)
    if client.has_capability("MOVE"):
        client.move([uid], folder)
        return
    client.copy([uid], folder)
    client.add_flags([uid], [DELETED], silent=True)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge([uid])
