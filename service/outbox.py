"""The outbox: mail is a row written with its cause, then claimed, sent and marked.

A message exists exactly when the transaction that caused it commits. Senders claim rows
under a lease, so a crashed sender's rows are taken over once the lease runs out; a row is
marked as soon as the SMTP server has answered, so a crash can repeat at most the messages
that were between the server's 250 and that commit.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from flask import Flask
from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Table,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from emails import Sender, Unsubscribe, compose, new_message_id
from emails.calendar import MeetingEvent, attach_calendar, cancel_ics, request_ics
from emails.compose import compose_fast
from emails.dkim import DkimSigner
from emails.transport import Outcome, SendResult, Transport
from emails.verp import return_path
from service import faults
from service.config import Settings, settings
from service.db import dialect_insert, get_database, insert_ignoring_duplicates
from service.models import (
    Contact,
    ContactStatus,
    Language,
    OutboundEmail,
    OutboxStatus,
    SharedMailContext,
    Suppression,
)

log = logging.getLogger(__name__)
_OUTBOX = cast(Table, OutboundEmail.__table__)

# Retry delays after a temporary failure; past the last one the message has failed.
BACKOFF = [timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 120, 240, 480, 720, 720, 720)]
MAX_ATTEMPTS = len(BACKOFF) + 1
SUPPRESSED_STATUSES = (ContactStatus.UNSUBSCRIBED, ContactStatus.BOUNCED)
# A claim lasts this long unless its sender renews it: a sender that dies frees its rows
# within minutes, while a live one renews well before the end however slow the relay is.
LEASE = timedelta(minutes=2)
RENEW_LEASES_EVERY_SECONDS = 30.0

# The secret of a link: a path segment, query value or mailto subject word of 16 or more
# URL-safe characters, inside a URL (tokens are 22).
_LINK = re.compile(r"(?:https?://|mailto:)\S+")
_LINK_SECRET = re.compile(r"(?:(?<=/)|(?<==)|(?<=%20)|(?<=\+))[A-Za-z0-9_-]{16,}")


def without_link_secrets(value: Any) -> Any:
    """`value` (a message's context) with every link's secret replaced by `*`.

    Kept once a message has left: what it said stays readable, but nothing stored can be
    turned back into a working confirm, review, RSVP or unsubscribe link.
    """
    if isinstance(value, str):
        return _LINK.sub(lambda link: _LINK_SECRET.sub("*", link.group(0)), value)
    if isinstance(value, dict):
        return {key: without_link_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_link_secrets(item) for item in value]
    return value


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
        context=without_link_secrets(context) if skipped_because else context,
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
        row.context = without_link_secrets(row.context)
        row.raw = None
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


def build_message(
    row: OutboundEmail | _Claimed,
    sender: Sender,
    *,
    fast: bool = False,
    shared_key: str | None = None,
) -> bytes:
    """The bytes to send for `row`: its stored bytes, or its template rendered now.

    With `fast`, a message without a calendar is built by `compose_fast` (the same message,
    made from a skeleton shared by its send); `shared_key` identifies the row's shared
    context so it need not be serialised per message.
    """
    if row.raw is not None:
        return row.raw
    shared = getattr(row, "shared", None) or {}
    context = {**shared, **row.context}
    calendar = context.pop("calendar", None)
    unsubscribe = context.pop("list_unsubscribe", None)
    headers: dict[str, Any] = dict(
        sender=sender,
        to_name=row.recipient_name,
        message_id=row.message_id,
        date=row.created_at,
        unsubscribe=Unsubscribe(**unsubscribe) if unsubscribe else None,
    )
    if fast and calendar is None:
        own = {k: v for k, v in row.context.items() if k not in ("calendar", "list_unsubscribe")}
        common = {k: v for k, v in shared.items() if k not in own}
        common.pop("calendar", None)
        common.pop("list_unsubscribe", None)
        return compose_fast(
            row.template,
            row.recipient,
            row.language.value,
            **headers,
            shared=common,
            shared_key=shared_key if len(common) == len(shared) else None,
            **own,
        )
    message = compose(row.template, row.recipient, row.language.value, **headers, **context)
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
    held: int = 0  # waiting for our own set-up to be mended
    fault: str = ""  # what is wrong with our set-up, while it is
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.expired + self.suppressed + self.held


def _attach_shared_context(db: Session, rows: list[_Claimed]) -> None:
    """Give each claimed row what its send has in common, loaded once per batch."""
    ids = {row.shared_context_id for row in rows if row.shared_context_id is not None}
    if not ids:
        return
    shared = {
        item.id: item.data
        for item in db.scalars(select(SharedMailContext).where(SharedMailContext.id.in_(ids)))
    }
    for row in rows:
        if row.shared_context_id is not None:
            row.shared = shared[row.shared_context_id].get(row.language.value, {})


def enqueue_many(
    db: Session,
    template: str,
    recipients: list[dict[str, Any]],
    *,
    shared: dict[str, dict[str, Any]],
    now: datetime,
    topic: str = "",
    list_mail: bool = True,
    not_after: datetime | None = None,
) -> dict[str, str]:
    """Queue one message per recipient of a send to many, in one bulk insert; the Message-ID
    given to each recipient's message, by dedupe key.

    `recipients` are dicts with `to`, `to_name`, `lang`, `dedupe_key`, a small personal
    `context` and, when the caller must know it first, a `message_id`; `shared` (language ->
    context) is stored once for the whole send. A dedupe key queued already queues nothing
    (that message keeps the Message-ID it has).
    """
    if not recipients:
        return {}
    common = SharedMailContext(data=shared, created_at=now)
    db.add(common)
    db.flush()
    domain = settings().mail_domain
    rows = [
        dict(
            dedupe_key=r["dedupe_key"],
            recipient=r["to"],
            recipient_name=r.get("to_name", ""),
            template=template,
            language=Language(r["lang"]),
            context=r.get("context", {}),
            list_mail=list_mail,
            shared_context_id=common.id,
            topic=topic,
            message_id=r.get("message_id") or new_message_id(domain),
            status=OutboxStatus.QUEUED,
            attempts=0,
            not_before=now,
            not_after=not_after,
            lease_owner="",
            last_error="",
            created_at=now,
        )
        for r in recipients
    ]
    # As in `enqueue`, the database settles a key queued twice (at no measurable cost here);
    # into the table (Core), as the ORM's bulk insert costs more than the insert itself.
    insert = dialect_insert(db.get_bind().dialect.name)
    statement = insert(_OUTBOX).on_conflict_do_nothing(index_elements=["dedupe_key"])
    db.execute(statement, rows)
    return {row["dedupe_key"]: row["message_id"] for row in rows}


def _suppressed_among(db: Session, addresses: list[str]) -> set[str]:
    """The addresses among `addresses` that must get no list mail: a few queries a batch."""
    found: set[str] = set()
    unique = sorted(set(addresses))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        found.update(db.scalars(select(Suppression.email).where(Suppression.email.in_(chunk))))
        found.update(
            db.scalars(
                select(Contact.email).where(
                    Contact.email.in_(chunk), Contact.status.in_(SUPPRESSED_STATUSES)
                )
            )
        )
    return found


# What the sender reads of a claimed row: enough to build, send and mark it.
_CLAIMED_COLUMNS = (
    "id",
    "dedupe_key",
    "recipient",
    "recipient_name",
    "template",
    "language",
    "context",
    "raw",
    "list_mail",
    "shared_context_id",
    "message_id",
    "not_after",
    "created_at",
)


class _Claimed:
    """A claimed row as plain values: loading and leasing a batch without the ORM's unit of
    work costs a fraction, which matters at thousands of messages a second."""

    __slots__ = (*_CLAIMED_COLUMNS, "shared")
    id: int
    dedupe_key: str
    recipient: str
    recipient_name: str
    template: str
    language: Language
    context: dict[str, Any]
    raw: bytes | None
    list_mail: bool
    shared_context_id: int | None
    message_id: str
    not_after: datetime | None
    created_at: datetime
    shared: dict[str, Any] | None

    def __init__(self, values: Any) -> None:
        for name, value in zip(_CLAIMED_COLUMNS, values, strict=True):
            setattr(self, name, value)
        self.shared = None


def claim(
    db: Session, *, owner: str, now: datetime, limit: int, lease: timedelta
) -> list[_Claimed]:
    """Take up to `limit` due rows under a lease for `owner`; other senders skip them.

    On PostgreSQL the rows are locked with SKIP LOCKED; on SQLite the transaction began with
    BEGIN IMMEDIATE, which already excludes other writers.
    """
    due = (
        select(OutboundEmail.id)
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
    # One statement leases the rows and reads them back.
    leased = (
        update(OutboundEmail)
        .where(OutboundEmail.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .returning(*(getattr(OutboundEmail, name) for name in _CLAIMED_COLUMNS))
        .execution_options(synchronize_session=False)
    )
    rows = sorted((_Claimed(values) for values in db.execute(leased)), key=lambda row: row.id)
    _attach_shared_context(db, rows)
    return rows


def _settle_claimed(
    db: Session, row: _Claimed, now: datetime, suppressed: set[str]
) -> OutboxStatus | None:
    """Expire or suppress a claimed row that must not be sent; None when it may go."""
    if row.not_after is not None and row.not_after <= now:
        status = OutboxStatus.EXPIRED
        error = f"not sent: its time ended at {row.not_after.isoformat()}"
    elif row.list_mail and row.recipient in suppressed:
        status = OutboxStatus.SUPPRESSED
        error = "not sent: the address is suppressed"
    else:
        return None
    db.execute(
        update(OutboundEmail)
        .where(OutboundEmail.id == row.id)
        .values(
            status=status,
            last_error=error,
            lease_owner="",
            lease_expires_at=None,
            context=without_link_secrets(row.context),
            raw=None,
        )
        .execution_options(synchronize_session=False)
    )
    return status


def _mark_unsent(row: OutboundEmail, result: SendResult, now: datetime) -> None:
    """Record an answer other than 250: wait (HELD), try again later (RETRY), or fail."""
    row.lease_owner = ""
    row.lease_expires_at = None
    row.last_error = result.detail[:1000]
    if result.outcome is Outcome.HELD:
        return  # not an attempt: no server that could judge the message has seen it
    row.attempts += 1
    if result.outcome is Outcome.RETRY and row.attempts < MAX_ATTEMPTS:
        row.not_before = now + BACKOFF[row.attempts - 1]
    else:
        row.status = OutboxStatus.FAILED


# Each connection waits until its last answer is marked before it sends again, so a crash
# repeats at most one message per connection (accepted by the server, not yet marked).
# Answers that arrive together are marked together, in one transaction.
MARK_WAIT = 0.25


@dataclass
class _Job:
    """One claimed row on its way to a connection, and the server's answer once it is back."""

    row: _Claimed
    sender: Sender
    envelope: str  # the envelope sender (MAIL FROM)
    shared_key: str | None
    data: bytes = b""
    result: SendResult | None = None
    marked: threading.Event = field(default_factory=threading.Event)


class _Run:
    """One pass of a sender: claimed jobs on their way through the builder and the connections,
    and the answers coming back to be marked."""

    def __init__(
        self, sender: OutboxSender, clock: Callable[[], datetime], report: DeliveryReport
    ) -> None:
        self.sender = sender
        self.clock = clock
        self.report = report
        self.claimed: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.built: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.in_flight = 0  # claimed and not yet answered
        self.unmarked: list[_Job] = []  # answered and not yet recorded
        self.exhausted = False
        self.renewed_at = time.monotonic()

    def keep_leases(self) -> None:
        if time.monotonic() - self.renewed_at > RENEW_LEASES_EVERY_SECONDS:
            self.sender._renew_leases(self.clock())
            self.renewed_at = time.monotonic()

    def claim_more(self) -> bool:
        """Claim the next batch while the connections still have half a batch to send; True
        when a full batch came, so that there may be more."""
        batch = self.sender.batch_size
        if self.exhausted or self.in_flight > batch // 2:
            return False
        if self.sender._stopping.is_set():
            self.exhausted = True
            return False
        count, ready = self.sender._claim(self.report, self.clock)
        self.exhausted = count < batch
        for job in ready:
            self.claimed.put(job)
        self.in_flight += len(ready)
        if ready and not self.threads:
            self.threads = self.sender._start_threads(self.claimed, self.built, self.done)
        return not self.exhausted

    def record_answers(self) -> None:
        """Mark the answers that are back, together: the first one waited for a moment."""
        try:
            answered = [self.done.get(timeout=MARK_WAIT)]
        except queue.Empty:
            return
        answered += _drain(self.done)
        self.in_flight -= len(answered)
        self.unmarked = answered
        self.sender._record(self.unmarked, self.report, self.clock())
        self.unmarked = []

    def finish(self) -> None:
        """Stop the threads. After a break mid-run (a fault of ours, an error), drop what is not
        sent yet, record what the server answered, and hand the rest back now rather than at
        lease end."""
        broken = bool(self.in_flight or self.unmarked)
        if broken:
            _drain(self.claimed)
            _drain(self.built)
        self.claimed.put(None)  # the builder passes one stop on to each connection
        for thread in self.threads:
            while thread.is_alive():
                # A connection may wait for a mark that will not come now: let it go; what it
                # sent is recorded below or handed back with the leases.
                for job in self.unmarked:
                    job.marked.set()
                try:
                    late = self.done.get(timeout=0.05)
                except queue.Empty:
                    continue
                late.marked.set()
                self.unmarked.append(late)
        if broken or self.unmarked:
            self.unmarked += _drain(self.done)
            try:
                self.sender._record(self.unmarked, self.report, self.clock())
            finally:
                with get_database(self.sender.app).transaction() as db:
                    release_leases(db, self.sender.owner)


def _drain(waiting: queue.SimpleQueue[Any]) -> list[Any]:
    """Everything in `waiting` now, without waiting for more."""
    items = []
    while True:
        try:
            items.append(waiting.get_nowait())
        except queue.Empty:
            return items


class OutboxSender:
    """Claims due rows, sends them over the transport's connections, marks them.

    One thread per SMTP connection builds and sends; the calling thread claims the next batch
    while the last one is still being sent and writes the marks in small groups, so the
    connections never wait for the database.
    """

    def __init__(
        self,
        app: Flask,
        transport: Transport,
        *,
        now: Callable[[], datetime],
        batch_size: int = 200,
    ) -> None:
        self.app = app
        self.transport = transport
        self.now = now
        self.batch_size = batch_size
        self.owner = f"sender-{uuid.uuid4().hex[:12]}"
        self.connections = max(1, transport.settings.connections)
        self.lease = LEASE
        config = settings(app)
        self.signer = _dkim_signer(config)
        self._return_path_base = config.return_path_base
        self._secret = config.secret_key
        self._stopping = threading.Event()
        self._marker: Connection | None = None
        self._first_run = True

    def stop(self) -> None:
        """Finish the batch in flight, then return from run_once (a clean shutdown)."""
        self._stopping.set()

    def run_once(self, now: Callable[[], datetime] | None = None) -> DeliveryReport:
        """Deliver everything due, batch after batch, until nothing due is left.

        `now` replaces the sender's clock for this run (`wg tick --now`).
        """
        clock = now or self.now
        report = DeliveryReport()
        if not self._set_up_works(clock(), report):
            return report
        run = _Run(self, clock, report)
        try:
            while not report.held:  # with our set-up broken the rest waits: handed back below
                run.keep_leases()
                if run.claim_more():
                    continue
                if run.in_flight == 0:
                    break
                run.record_answers()
        finally:
            run.finish()
            if self._marker is not None:
                self._marker.close()
                self._marker = None
        return report

    def _set_up_works(self, now: datetime, report: DeliveryReport) -> bool:
        """Whether to send now: yes, unless our set-up is known to be broken.

        With a fault open, once a minute the relay is tried again: with the next message when
        one is due, else by logging in alone; in between nothing is tried at all.
        """
        first_run, self._first_run = self._first_run, False
        with get_database(self.app).transaction() as db:
            fault = faults.open_fault(db, faults.SMTP)
            if fault is None:
                return True
            report.fault = fault.detail
            # A sender that has just started tries at once: its settings may be the repair.
            if not (first_run or faults.probe_due(fault, now)):
                return False
            if _anything_due(db, now):
                return True
            result = self.transport.check()
            if result.outcome is Outcome.SENT:
                faults.clear_fault(db, faults.SMTP, now=now)
                report.fault = ""
            else:
                faults.record_fault(
                    db, faults.SMTP, kind=result.fault, detail=result.detail, now=now
                )
                report.fault = result.detail
        return False

    def _renew_leases(self, now: datetime) -> None:
        """Extend the lease of every row this sender still holds: it is alive and working."""
        with get_database(self.app).transaction() as db:
            db.execute(
                update(OutboundEmail)
                .where(
                    OutboundEmail.lease_owner == self.owner,
                    OutboundEmail.status == OutboxStatus.QUEUED,
                )
                .values(lease_expires_at=now + self.lease)
                .execution_options(synchronize_session=False)
            )

    def _start_threads(
        self,
        claimed: queue.SimpleQueue[_Job | None],
        built: queue.SimpleQueue[_Job | None],
        done: queue.SimpleQueue[_Job],
    ) -> list[threading.Thread]:
        """One thread that builds messages and one per connection that sends them: building
        the next message overlaps with waiting for the server's answer to the last one."""
        threads = [threading.Thread(target=self._build_all, args=(claimed, built, done))]
        threads += [
            threading.Thread(target=self._send_all, args=(built, done))
            for _ in range(self.connections)
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        return threads

    def _claim(
        self, report: DeliveryReport, clock: Callable[[], datetime]
    ) -> tuple[int, list[_Job]]:
        """Claim a batch; settle what must not be sent; the jobs for the rest."""
        now = clock()
        with self.app.app_context(), get_database(self.app).transaction() as db:
            rows = claim(db, owner=self.owner, now=now, limit=self.batch_size, lease=self.lease)
            suppressed = _suppressed_among(db, [row.recipient for row in rows if row.list_mail])
            sender = mail_sender()
            ready = []
            shared_keys: dict[int, str] = {}
            for row in rows:
                settled = _settle_claimed(db, row, now, suppressed)
                if settled is OutboxStatus.EXPIRED:
                    report.expired += 1
                elif settled is OutboxStatus.SUPPRESSED:
                    report.suppressed += 1
                else:
                    key = None
                    if row.shared:  # one serialisation per send and batch, not per message
                        key = shared_keys.get(id(row.shared))
                        if key is None:
                            key = shared_keys[id(row.shared)] = json.dumps(
                                row.shared, sort_keys=True, default=str
                            )
                    envelope = return_path(self._return_path_base, row.id, self._secret)
                    ready.append(_Job(row, sender, envelope, key))
        return len(rows), ready

    def _build_all(
        self,
        claimed: queue.SimpleQueue[_Job | None],
        built: queue.SimpleQueue[_Job | None],
        done: queue.SimpleQueue[_Job],
    ) -> None:
        while (job := claimed.get()) is not None:
            try:
                job.data = build_message(job.row, job.sender, fast=True, shared_key=job.shared_key)
                if self.signer is not None:
                    job.data = self.signer.sign(job.data)
            except Exception as exc:  # a template or context bug must not stop the queue
                log.exception("could not build message %s", job.row.dedupe_key)
                detail = f"could not build the message: {exc}"
                job.result = SendResult(Outcome.FAILED, None, detail)
                done.put(job)
                continue
            built.put(job)
        for _ in range(self.connections):
            built.put(None)

    def _send_all(self, built: queue.Queue[_Job | None], done: queue.SimpleQueue[_Job]) -> None:
        while (job := built.get()) is not None:
            try:
                job.result = self.transport.send(job.envelope, job.row.recipient, job.data)
            except Exception as exc:  # pragma: no cover - the transport reports every failure
                log.exception("could not send message %s", job.row.dedupe_key)
                job.result = SendResult(Outcome.RETRY, None, f"could not send: {exc}")
            job.data = b""
            done.put(job)
            job.marked.wait()  # at most one answered-but-unmarked message per connection

    def _mark_sent(self, jobs: list[_Job], now: datetime) -> None:
        """Mark sent rows over one connection held for the run: each connection waits for
        this commit before it sends again, so it must cost one round trip, not a checkout.

        What is kept of a sent message has its links' secrets taken out.
        """
        if self._marker is None:
            self._marker = get_database(self.app).engine.connect()
            if self._marker.dialect.name == "postgresql":
                # The mark must survive this process dying, not the database server itself:
                # without the WAL flush a commit costs far less, and a server crash could at
                # worst repeat the last fraction of a second of sends.
                self._marker.exec_driver_sql("SET synchronous_commit TO OFF")
                self._marker.commit()
        rows = [
            {"row_id": job.row.id, "now": now, "context": without_link_secrets(job.row.context)}
            for job in jobs
        ]
        with self._marker.begin():
            # One prepared statement run for each row (psycopg pipelines them).
            self._marker.execute(_MARK_SENT, rows)

    def _record(self, finished: list[_Job], report: DeliveryReport, now: datetime) -> None:
        """Mark answered rows: the sent ones in one statement, the others through the ORM."""
        if not finished:
            return
        outcomes = [(job, job.result.outcome) for job in finished if job.result is not None]
        sent = [job for job, outcome in outcomes if outcome is Outcome.SENT]
        if sent:
            self._mark_sent(sent, now)
        unsent = [job for job, outcome in outcomes if outcome is not Outcome.SENT]
        went_through = any(outcome is not Outcome.HELD for _job, outcome in outcomes)
        if unsent or (report.fault and went_through):
            with get_database(self.app).transaction() as db:
                self._record_unsent(db, unsent, report, now)
                if report.fault and went_through and not report.held:
                    faults.clear_fault(db, faults.SMTP, now=now)
                    report.fault = ""
        report.sent += len(sent)
        for job in finished:
            job.marked.set()

    def _record_unsent(
        self, db: Session, unsent: list[_Job], report: DeliveryReport, now: datetime
    ) -> None:
        held: SendResult | None = None
        for job in unsent:
            result = job.result
            assert result is not None
            row = db.get(OutboundEmail, job.row.id)
            if row is None:  # pragma: no cover - rows are never deleted
                continue
            _mark_unsent(row, result, now)
            if result.outcome is Outcome.HELD:
                report.held += 1
                held = held or result
                continue
            if row.status is OutboxStatus.FAILED:
                report.failed += 1
            else:
                report.retried += 1
            report.errors.append(f"{row.recipient}: {result.detail}")
        if held is not None and not report.fault:  # once a run: the log says it once a probe
            faults.record_fault(db, faults.SMTP, kind=held.fault, detail=held.detail, now=now)
            report.fault = held.detail


_MARK_SENT = (
    _OUTBOX.update()
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(
        status=OutboxStatus.SENT,
        sent_at=bindparam("now"),
        last_error="",
        attempts=_OUTBOX.c.attempts + 1,
        lease_owner="",
        lease_expires_at=None,
        context=bindparam("context"),
        raw=None,
    )
)


def _anything_due(db: Session, now: datetime) -> bool:
    return (
        db.scalar(
            select(OutboundEmail.id)
            .where(OutboundEmail.status == OutboxStatus.QUEUED, OutboundEmail.not_before <= now)
            .limit(1)
        )
        is not None
    )


def _dkim_signer(config: Settings) -> DkimSigner | None:
    if not config.dkim_key_file:
        return None
    key = Path(config.dkim_key_file).read_bytes()
    return DkimSigner(config.dkim_selector, config.dkim_domain, key)


@dataclass(frozen=True)
class Health:
    counts: dict[str, int]
    due: int
    oldest_queued_at: datetime | None
    last_errors: list[dict[str, str]]
    fault: str | None = None  # why mail is not going out, while it is not

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "due": self.due,
            "oldest_queued_at": self.oldest_queued_at.isoformat()
            if self.oldest_queued_at
            else None,
            "last_errors": self.last_errors,
            "fault": self.fault,
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
    fault = faults.open_fault(db, faults.SMTP)
    return Health(
        counts=counts,
        due=due or 0,
        oldest_queued_at=oldest,
        last_errors=last_errors,
        fault=faults.describe(fault) if fault else None,
    )


def requeue(db: Session, *, now: datetime, failed: bool, since: datetime | None = None) -> int:
    """Send again now, each once: what waits for its next retry, and with `failed` what failed.

    A failed message gets a fresh set of attempts; one whose time has ended (an invitation to
    a meeting that has begun) stays as it is.
    """
    waiting = (OutboundEmail.status == OutboxStatus.QUEUED) & (OutboundEmail.not_before > now)
    chosen: ColumnElement[bool] = waiting
    if failed:
        still_useful = or_(OutboundEmail.not_after.is_(None), OutboundEmail.not_after > now)
        chosen = or_(waiting, (OutboundEmail.status == OutboxStatus.FAILED) & still_useful)
    if since is not None:
        chosen = chosen & (OutboundEmail.created_at >= since)
    faults.probe_now(db, faults.SMTP, now=now)  # an operator who asks for it means now
    result = db.execute(
        update(OutboundEmail)
        .where(chosen)
        .values(
            status=OutboxStatus.QUEUED,
            not_before=now,
            attempts=case(
                (OutboundEmail.status == OutboxStatus.FAILED, 0), else_=OutboundEmail.attempts
            ),
            lease_owner="",
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount or 0


def release_leases(db: Session, owner: str) -> int:
    """Give back `owner`'s claimed rows at once (a clean stop) instead of waiting out the lease."""
    result = db.execute(
        update(OutboundEmail)
        .where(OutboundEmail.lease_owner == owner, OutboundEmail.status == OutboxStatus.QUEUED)
        .values(lease_owner="", lease_expires_at=None)
    )
    return cast(CursorResult[Any], result).rowcount or 0
