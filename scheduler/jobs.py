"""The scheduler's jobs: thin, transactional, with the clock passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import Flask

from emails.transport import Transport
from service.outbox import DeliveryReport, OutboxSender


@dataclass
class TickReport:
    now: datetime
    delivery: DeliveryReport

    def summary(self) -> str:
        d = self.delivery
        return (
            f"tick at {self.now.isoformat()}: sent {d.sent}, retry later {d.retried}, "
            f"failed {d.failed}, expired {d.expired}, suppressed {d.suppressed}"
        )


def deliver(app: Flask, transport: Transport, now: Callable[[], datetime]) -> DeliveryReport:
    """Send everything due in the outbox."""
    return OutboxSender(app, transport, now=now).run_once()


def tick(app: Flask, transport: Transport, now: datetime) -> TickReport:
    """One pass of the clock at `now`: enqueue what is due, then deliver the outbox."""
    return TickReport(now=now, delivery=deliver(app, transport, lambda: now))
