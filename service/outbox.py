"""The outbox: mail is a row written with its cause, then claimed, sent and marked.

A message exists exactly when the transaction that caused it commits. Senders claim rows
under a lease, so a crashed sender's rows are taken over once the lease runs out; a row is
marked as soon as the SMTP server has answered, so a crash can repeat at most the messages
that were between the server's 250 and that commit.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from flask import Flask
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from emails import Sender, Unsubscribe, compose, new_message_id
from emails.calendar import MeetingEvent, attach_calendar, cancel_ics, request_ics
from emails.transport import Outcome, SendResult, Transport
from service.config import settings
from service.db import get_database, insert_ignoring_duplicates
from service.models import (
    Contact,
    ContactStatus,
    Language,
    OutboundEmail,
    OutboxStatus,
    Suppression,
)

log = logging.getLogger(__name__)

# Retry delays after a temporary failure; past the last one the message has failed.
BACKOFF = [timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 120, 240, 480, 720, 720, 720)]
MAX_ATTEMPTS = len(BACKOFF) + 1
SUPPRESSED_STATUSES = (ContactStatus.UNSUBSCRIBED, ContactStatus.BOUNCED)


def enqueue(
    db: Session,
    template: str,
    *,
    to: str,
    lang: Language | str,
    dedupe_key: str,
    context: dict[str, Any],
    now: datetime,
    to_name: str = "",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    list_mail: bool = False,
    topic: str = "",
    skipped_because: str = "",
) -> str | None:
    """Queue one message unless one with the same dedupe key exists; its Message-ID if queued.

    The insert ignores a conflicting key in the database itself, so two processes that
    decide the same message at once still queue it once. With `skipped_because`, the row
    is written as already expired: a record that the message was due but is not useful
    any more, which also keeps it from being sent later.
    """
    message_id = new_message_id(settings().mail_domain)
    values = dict(
        dedupe_key=dedupe_key,
        recipient=to,
        recipient_name=to_name,
        template=template,
        language=Language(lang),
        context=context,
        list_mail=list_mail,
        topic=topic,
        message_id=message_id,
        status=OutboxStatus.EXPIRED if skipped_because else OutboxStatus.QUEUED,
        attempts=0,
        not_before=not_before or now,
        not_after=not_after,
        lease_owner="",
        last_error=f"not sent: {skipped_because}" if skipped_because else "",
        created_at=now,
    )
    inserted = insert_ignoring_duplicates(db, OutboundEmail, ("dedupe_key",), values)
    return message_id if inserted else None


def withdraw(db: Session, topic: str, *, reason: str, keep: Callable[[str], bool]) -> int:
    """Expire the queued mail about `topic` (say, a cancelled meeting), except what `keep` wants."""
    rows = db.scalars(
        select(OutboundEmail).where(
            OutboundEmail.topic == topic, OutboundEmail.status == OutboxStatus.QUEUED
        )
    ).all()
    withdrawn = 0
    for row in rows:
        if keep(row.dedupe_key):
            continue
        row.status = OutboxStatus.EXPIRED
        row.last_error = f"withdrawn: {reason}"
        withdrawn += 1
    return withdrawn


def mail_sender() -> Sender:
    config = settings()
    return Sender(
        from_address=config.mail_from,
        reply_to=config.reply_to,
        group_name=config.group_name,
        group_name_km=config.group_name_km,
        list_id=f"{config.group_name} <members.{config.mail_domain}>",
    )


def build_message(row: OutboundEmail, sender: Sender) -> bytes:
    """The bytes to send for `row`: its stored bytes, or its template rendered now."""
    if row.raw is not None:
        return row.raw
    context = dict(row.context)
    calendar = context.pop("calendar", None)
    unsubscribe = context.pop("list_unsubscribe", None)
    message = compose(
        row.template,
        row.recipient,
        row.language.value,
        sender=sender,
        to_name=row.recipient_name,
        message_id=row.message_id,
        date=row.created_at,
        unsubscribe=Unsubscribe(**unsubscribe) if unsubscribe else None,
        **context,
    )
    if calendar is not None:
        method = calendar.pop("method")
        event = MeetingEvent(
            **{
                **calendar,
                "starts_at": datetime.fromisoformat(calendar["starts_at"]),
                "ends_at": datetime.fromisoformat(calendar["ends_at"]),
            }
        )
        # DTSTAMP is when the organizer made this version: when the row was queued.
        ics = (request_ics if method == "REQUEST" else cancel_ics)(event, stamp=row.created_at)
        message = attach_calendar(message, ics, method)
    return message.as_bytes()


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    suppressed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.expired + self.suppressed


def claim(
    db: Session, *, owner: str, now: datetime, limit: int, lease: timedelta
) -> list[OutboundEmail]:
    """Take up to `limit` due rows under a lease for `owner`; other senders skip them."""
    due = (
        select(OutboundEmail)
        .where(
            OutboundEmail.status == OutboxStatus.QUEUED,
            OutboundEmail.not_before <= now,
            or_(OutboundEmail.lease_expires_at.is_(None), OutboundEmail.lease_expires_at < now),
        )
        .order_by(OutboundEmail.not_before, OutboundEmail.id)
        .limit(limit)
    )
    if db.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # On SQLite the transaction began with BEGIN IMMEDIATE, which already excludes other writers.
    rows = list(db.scalars(due))
    for row in rows:
        row.lease_owner = owner
        row.lease_expires_at = now + lease
    db.flush()
    return rows


def _is_suppressed(db: Session, address: str) -> bool:
    if db.scalar(select(Suppression.id).where(Suppression.email == address)):
        return True
    status = db.scalar(select(Contact.status).where(Contact.email == address))
    return status in SUPPRESSED_STATUSES


def _settle_without_sending(db: Session, row: OutboundEmail, now: datetime) -> OutboxStatus | None:
    """Expire or suppress `row` when it must not be sent; None when it may go."""
    if row.not_after is not None and row.not_after <= now:
        row.status = OutboxStatus.EXPIRED
        row.last_error = f"not sent: its time ended at {row.not_after.isoformat()}"
    elif row.list_mail and _is_suppressed(db, row.recipient):
        row.status = OutboxStatus.SUPPRESSED
        row.last_error = "not sent: the address is suppressed"
    else:
        return None
    row.lease_owner = ""
    row.lease_expires_at = None
    return row.status


def _mark(row: OutboundEmail, result: SendResult, now: datetime) -> None:
    row.attempts += 1
    row.lease_owner = ""
    row.lease_expires_at = None
    if result.outcome is Outcome.SENT:
        row.status = OutboxStatus.SENT
        row.sent_at = now
        row.last_error = ""
    elif result.outcome is Outcome.RETRY and row.attempts < MAX_ATTEMPTS:
        row.not_before = now + BACKOFF[row.attempts - 1]
        row.last_error = result.detail[:1000]
    else:
        row.status = OutboxStatus.FAILED
        row.last_error = result.detail[:1000]


class OutboxSender:
    """Claims due rows, sends them over the transport's connections, marks each one."""

    def __init__(
        self,
        app: Flask,
        transport: Transport,
        *,
        now: Callable[[], datetime],
        batch_size: int = 100,
    ) -> None:
        self.app = app
        self.transport = transport
        self.now = now
        self.batch_size = batch_size
        self.owner = f"sender-{uuid.uuid4().hex[:12]}"
        self.connections = max(1, transport.settings.connections)
        # Long enough for a whole batch against a slow server: each connection works
        # through its share of the batch, each message at worst one SMTP timeout.
        per_connection = -(-batch_size // self.connections)
        self.lease = timedelta(seconds=per_connection * transport.settings.timeout * 2 + 60)
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Finish the batch in flight, then return from run_once (a clean shutdown)."""
        self._stopping.set()

    def run_once(self, now: Callable[[], datetime] | None = None) -> DeliveryReport:
        """Deliver everything due, batch after batch, until nothing due is left.

        `now` replaces the sender's clock for this run (`wg tick --now`).
        """
        clock = now or self.now
        report = DeliveryReport()
        while not self._stopping.is_set():
            handled = self._deliver_batch(report, clock)
            if handled < self.batch_size:
                break
        return report

    def _deliver_batch(self, report: DeliveryReport, clock: Callable[[], datetime]) -> int:
        database = get_database(self.app)
        now = clock()
        with self.app.app_context(), database.transaction() as db:
            rows = claim(db, owner=self.owner, now=now, limit=self.batch_size, lease=self.lease)
            ready = []
            for row in rows:
                settled = _settle_without_sending(db, row, now)
                if settled is OutboxStatus.EXPIRED:
                    report.expired += 1
                elif settled is OutboxStatus.SUPPRESSED:
                    report.suppressed += 1
                else:
                    ready.append(row)
            sender = mail_sender()
        if not ready:
            return len(rows)
        recorded = 0
        try:
            with ThreadPoolExecutor(max_workers=self.connections) as pool:
                results = pool.map(self._send, ready, [sender] * len(ready))
                for row, result in zip(ready, results, strict=True):
                    self._record(row.id, result, report, clock())
                    recorded += 1
        finally:
            if recorded < len(ready):
                # Something broke mid-batch: hand the rest back now rather than at lease end.
                with database.transaction() as db:
                    release_leases(db, self.owner)
        return len(rows)

    def _send(self, row: OutboundEmail, sender: Sender) -> SendResult:
        try:
            data = build_message(row, sender)
        except Exception as exc:  # a template or context bug must not stop the queue
            log.exception("could not build message %s", row.dedupe_key)
            return SendResult(Outcome.FAILED, None, f"could not build the message: {exc}")
        return self.transport.send(_envelope_sender(sender), row.recipient, data)

    def _record(
        self, row_id: int, result: SendResult, report: DeliveryReport, now: datetime
    ) -> None:
        with get_database(self.app).transaction() as db:
            row = db.get(OutboundEmail, row_id)
            if row is None:  # pragma: no cover - rows are never deleted
                return
            _mark(row, result, now)
            if row.status is OutboxStatus.SENT:
                report.sent += 1
            elif row.status is OutboxStatus.FAILED:
                report.failed += 1
                report.errors.append(f"{row.recipient}: {result.detail}")
            else:
                report.retried += 1
                report.errors.append(f"{row.recipient}: {result.detail}")


def _envelope_sender(sender: Sender) -> str:
    return parseaddr(sender.from_address)[1]


@dataclass(frozen=True)
class Health:
    counts: dict[str, int]
    due: int
    oldest_queued_at: datetime | None
    last_errors: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "due": self.due,
            "oldest_queued_at": self.oldest_queued_at.isoformat()
            if self.oldest_queued_at
            else None,
            "last_errors": self.last_errors,
        }


def health(db: Session, *, now: datetime, error_limit: int = 10) -> Health:
    """Counts by status, how much is due, the oldest waiting message and the latest errors."""
    counts = {status.value: 0 for status in OutboxStatus}
    for status, count in db.execute(
        select(OutboundEmail.status, func.count()).group_by(OutboundEmail.status)
    ):
        counts[status.value] = count
    due = db.scalar(
        select(func.count()).where(
            OutboundEmail.status == OutboxStatus.QUEUED, OutboundEmail.not_before <= now
        )
    )
    oldest = db.scalar(
        select(func.min(OutboundEmail.created_at)).where(
            OutboundEmail.status == OutboxStatus.QUEUED
        )
    )
    errors = db.execute(
        select(OutboundEmail.recipient, OutboundEmail.status, OutboundEmail.last_error)
        .where(OutboundEmail.last_error != "")
        .order_by(OutboundEmail.id.desc())
        .limit(error_limit)
    )
    last_errors = [{"recipient": r, "status": s.value, "error": e} for r, s, e in errors]
    return Health(counts=counts, due=due or 0, oldest_queued_at=oldest, last_errors=last_errors)


def release_leases(db: Session, owner: str) -> int:
    """Give back `owner`'s claimed rows at once (a clean stop) instead of waiting out the lease."""
    result = db.execute(
        update(OutboundEmail)
        .where(OutboundEmail.lease_owner == owner, OutboundEmail.status == OutboxStatus.QUEUED)
        .values(lease_owner="", lease_expires_at=None)
    )
    return result.rowcount or 0
