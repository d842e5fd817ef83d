"""The APScheduler process: a clock only; the database is the source of truth."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from emails.transport import Transport
from scheduler import jobs
from service.clock import now
from service.config import settings
from service.inbound.imap import PollError, poll_once
from service.outbox import OutboxSender

log = logging.getLogger(__name__)

TICK_EVERY_SECONDS = 60
DELIVER_EVERY_SECONDS = 5
INBOUND_EVERY_MINUTES = 3


def add_jobs(scheduler: BaseScheduler, app: Flask, transport: Transport) -> OutboxSender:
    """The tick every minute, delivery every few seconds, and (when WG_IMAP_HOST is set) the
    mailbox every few minutes; a missed run is simply skipped, because the next one derives
    everything from the database (and the mailbox) again.

    Returns the process's one outbox sender, so that shutdown can stop it between batches.
    """
    sender = OutboxSender(app, transport, now=lambda: now(app))

    def tick_job() -> None:
        # Only the deliver job sends: one sender, one lease owner, in this process.
        report = jobs.enqueue_due(app, now(app))
        if report.queued_anything:
            log.info(report.summary())

    def deliver_job() -> None:
        report = sender.run_once()
        if report.handled:
            log.info(
                "delivered: sent %d, retry %d, failed %d",
                report.sent,
                report.retried,
                report.failed,
            )

    def inbound_job() -> None:
        try:
            report = poll_once(app, settings(app), now=lambda: now(app))
        except PollError as exc:
            log.error("inbound poll: %s", exc)
            return
        except Exception:
            log.exception("inbound poll failed")
            return
        if report.handled:
            log.info("inbound poll: %s", report.summary())

    common = dict(max_instances=1, coalesce=True, misfire_grace_time=None)
    scheduler.add_job(
        tick_job,
        IntervalTrigger(seconds=TICK_EVERY_SECONDS),
        id="tick",
        next_run_time=datetime.now(UTC),
        **common,
    )
    scheduler.add_job(
        deliver_job, IntervalTrigger(seconds=DELIVER_EVERY_SECONDS), id="deliver", **common
    )
    if settings(app).imap_host:
        scheduler.add_job(
            inbound_job, IntervalTrigger(minutes=INBOUND_EVERY_MINUTES), id="inbound", **common
        )
    return sender
