"""The scheduler's jobs: thin, transactional, with the clock passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Flask

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


def tick(app: Flask, sender: OutboxSender, now: datetime) -> TickReport:
    """One pass of the clock at `now`: enqueue what is due, then deliver the outbox."""
    return TickReport(now=now, delivery=sender.run_once(lambda: now))
