"""Several outbox senders at once, each a process with its own app, transport and leases.

One process builds, sends and marks only as fast as one core allows (Python runs one thread
at a time), so a send to thousands of members goes faster with a sender per core. Each sender
claims its own rows under its own lease, which keeps the outbox's promises as with one: nothing
sent twice, and after a kill -9 at most one message per open connection repeated.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from flask import Flask

from service.outbox import DeliveryReport, OutboxSender

# The process's own sender, made once by `_start` in each worker process.
_sender: OutboxSender | None = None


def _start(config: dict[str, str]) -> None:
    """Build this worker's app, transport and sender from the parent's settings."""
    from emails.transport import Transport
    from service import create_app
    from service.clock import now
    from service.config import settings

    global _sender
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    app = create_app(config)
    sender = OutboxSender(app, Transport(settings(app).smtp()), now=lambda: now(app))
    # SIGTERM (systemd stopping the scheduler): finish the batch in flight, then return.
    signal.signal(signal.SIGTERM, lambda *_: sender.stop())
    _sender = sender


def _deliver(moment: datetime | None) -> DeliveryReport:
    assert _sender is not None, "the worker was not started"
    return _sender.run_once((lambda: moment) if moment is not None else None)


def combined(reports: list[DeliveryReport]) -> DeliveryReport:
    """One report for what several senders did in one pass."""
    total = DeliveryReport()
    for report in reports:
        for name in ("sent", "retried", "failed", "expired", "suppressed", "held"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        total.errors.extend(report.errors)
        total.fault = total.fault or report.fault
    return total


class SenderPool:
    """`count` sender processes that deliver the outbox together, one pass at a time."""

    def __init__(self, app: Flask, count: int) -> None:
        context = multiprocessing.get_context("forkserver")
        # Workers are forked from a server that has imported these once: each starts in
        # milliseconds rather than importing Flask, SQLAlchemy and the mail code anew.
        context.set_forkserver_preload(["service", "service.outbox", "emails.compose"])
        self.count = count
        self.executor = ProcessPoolExecutor(
            max_workers=count,
            mp_context=context,
            initializer=_start,
            initargs=(app.extensions["wg.config"],),
        )

    def run_once(self, now: datetime | None = None) -> DeliveryReport:
        """Deliver everything due with every sender at once; `now` replaces their clocks."""
        futures = [self.executor.submit(_deliver, now) for _ in range(self.count)]
        return combined([future.result() for future in futures])

    def stop(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> SenderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
