"""The APScheduler process: a clock only; the database is the source of truth."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from emails.transport import Transport
from scheduler import jobs
from service import faults
from service.clock import now
from service.config import settings
from service.db import UNAVAILABLE, get_database, session_scope, unavailable_reason
from service.inbound.imap import PollError, poll_once
from service.outbox import OutboxSender
from service.ratelimits import forget_expired
from service.senders import SenderPool

log = logging.getLogger(__name__)

TICK_EVERY_SECONDS = 60
DELIVER_EVERY_SECONDS = 5
INBOUND_EVERY_MINUTES = 3
# While the database is away every job fails each time it runs; one line a minute says so.
UNAVAILABLE_LOG_EVERY_SECONDS = 60.0


class DatabaseWatch:
    """Runs jobs; while the database is unavailable, logs one line a minute instead of a
    traceback per run, and says when it is back."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.logged_at: float | None = None

    def run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except UNAVAILABLE as exc:
            now = time.monotonic()
            if self.down_since is None:
                self.down_since = now
            if self.logged_at is None or now - self.logged_at >= UNAVAILABLE_LOG_EVERY_SECONDS:
                self.logged_at = now
                log.error("the database is unavailable: %s", unavailable_reason(exc))
            return
        if self.down_since is not None:
            log.warning(
                "the database is back after %d s", round(time.monotonic() - self.down_since)
            )
            self.down_since, self.logged_at = None, None


def tick(app: Flask) -> None:
    """Queue what the clock says is due; forget rate-limit counters whose window ended.

    It only queues: the deliver job alone sends, so this process has one lease owner."""
    moment = now(app)
    report = jobs.enqueue_due(app, moment)
    if report.queued_anything:
        log.info(report.summary())
    forget_expired(get_database(app).engine, moment)


def deliver(sender: OutboxSender | SenderPool) -> None:
    report = sender.run_once()
    if report.handled and not report.held:
        log.info(
            "delivered: sent %d, retry %d, failed %d", report.sent, report.retried, report.failed
        )


def poll_mailbox(app: Flask) -> None:
    """Read the mailbox once; a mailbox that cannot be read is a fault, as the relay's is."""
    moment = now(app)
    try:
        report = poll_once(app, settings(app), now=lambda: now(app))
    except PollError as exc:
        # Loud where people look (/healthz, the digest), as a relay fault is.
        with app.app_context(), session_scope(app) as db:
            faults.record_fault(db, faults.IMAP, kind="mailbox", detail=str(exc), now=moment)
        return
    except UNAVAILABLE:
        raise  # the database watch says it once a minute
    except Exception:
        log.exception("inbound poll failed")
        return
    with app.app_context(), session_scope(app) as db:
        faults.clear_fault(db, faults.IMAP, now=moment)
    if report.handled:
        log.info("inbound poll: %s", report.summary())


def add_jobs(
    scheduler: BaseScheduler, app: Flask, transport: Transport, *, senders: int = 1
) -> OutboxSender | SenderPool:
    """The tick every minute, delivery every few seconds, and (when WG_IMAP_HOST is set) the
    mailbox every few minutes; a missed run is simply skipped, because the next one derives
    everything from the database (and the mailbox) again.

    Returns the process's outbox sender (a pool of sender processes with `senders` > 1), so
    that shutdown can stop it between batches.
    """
    sender: OutboxSender | SenderPool = OutboxSender(app, transport, now=lambda: now(app))
    if senders > 1:
        sender = SenderPool(app, senders)
    database = DatabaseWatch()
    common: dict[str, Any] = dict(max_instances=1, coalesce=True, misfire_grace_time=None)
    at_start = dict(next_run_time=datetime.now(UTC), **common)
    scheduler.add_job(
        partial(database.run, partial(tick, app)),
        IntervalTrigger(seconds=TICK_EVERY_SECONDS),
        id="tick",
        **at_start,
    )
    scheduler.add_job(  # at start too: what waited for this process goes now
        partial(database.run, partial(deliver, sender)),
        IntervalTrigger(seconds=DELIVER_EVERY_SECONDS),
        id="deliver",
        **at_start,
    )
    if settings(app).imap_host:
        scheduler.add_job(
            partial(database.run, partial(poll_mailbox, app)),
            IntervalTrigger(minutes=INBOUND_EVERY_MINUTES),
            id="inbound",
            **common,
        )
    return sender
