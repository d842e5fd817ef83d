"""The scheduler's jobs: thin, transactional, with the clock passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Flask

from service.db import session_scope
from service.meetings import operations as meetings
from service.notices import digest
from service.outbox import DeliveryReport, OutboxSender
from service.senders import SenderPool


@dataclass
class DueReport:
    meetings: meetings.DueReport
    digests: int

    @property
    def queued_anything(self) -> bool:
        m = self.meetings
        return bool(
            self.digests
            or m.meetings_created
            or m.invited
            or m.followed_up
            or m.reminded
            or m.skipped
        )

    def summary(self) -> str:
        return f"{self.meetings.summary()}; digests {self.digests}"


@dataclass
class TickReport:
    now: datetime
    due: DueReport
    delivery: DeliveryReport

    def summary(self) -> str:
        d = self.delivery
        return (
            f"tick at {self.now.isoformat()}: {self.due.summary()}; sent {d.sent}, "
            f"retry later {d.retried}, failed {d.failed}, expired {d.expired}, "
            f"suppressed {d.suppressed}"
        )


def enqueue_due(app: Flask, now: datetime) -> DueReport:
    """Queue what the clock says is due; safe to run twice or in two processes at once."""
    with app.app_context(), session_scope(app) as db:
        return DueReport(
            meetings=meetings.enqueue_due(db, now=now),
            digests=digest.enqueue_if_due(db, now=now),
        )


def tick(app: Flask, sender: OutboxSender | SenderPool, now: datetime) -> TickReport:
    """One pass of the clock at `now`: enqueue what is due, then deliver the outbox."""
    due = enqueue_due(app, now)
    if isinstance(sender, SenderPool):
        delivery = sender.run_once(now)
    else:
        delivery = sender.run_once(lambda: now)
    return TickReport(now=now, due=due, delivery=delivery)
