"""Figure 1: delivery throughput of the real outbox and transport against plain smtplib."""

from __future__ import annotations

import smtplib
import threading
import time
from pathlib import Path

from bench.common import (
    NOW,
    Database,
    add_members,
    announce,
    fresh_database,
    log,
    make_app,
    timed,
)

SAMPLE = 200  # prebuilt messages the baseline cycles through


def prebuilt_messages(app, count: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Messages of the send, built the reference way (compose), for the baseline."""
    from sqlalchemy import select

    from service import outbox
    from service.db import session_scope
    from service.models import OutboundEmail

    with app.app_context(), session_scope(app) as db:
        rows = list(db.scalars(select(OutboundEmail).order_by(OutboundEmail.id).limit(count)))
        outbox._attach_shared_context(db, rows)
        sender = outbox.mail_sender()
        return [outbox.build_message(row, sender) for row in rows]


def smtplib_rate(port: int, messages: list[bytes], total: int, connections: int) -> float:
    """Messages a second that plain smtplib pushes over `connections` connections."""
    share = [
        total // connections + (1 if n < total % connections else 0) for n in range(connections)
    ]
    errors: list[BaseException] = []

    def push(count: int, offset: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as conn:
                for n in range(count):
                    message = messages[(offset + n) % len(messages)]
                    conn.sendmail("noreply@wg.example.org", [f"m{offset + n}@example.org"], message)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=push, args=(count, sum(share[:n]))) for n, count in enumerate(share)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"baseline failed: {errors[0]!r}")
    return total / elapsed


def outbox_rate(app, senders: int = 1) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Messages a second through the real outbox; with several senders, their processes'
    start (the first pass makes each one's app) is part of the time."""
    from emails.transport import Transport
    from service.config import settings
    from service.outbox import OutboxSender
    from service.senders import SenderPool

    if senders > 1:
        with SenderPool(app, senders) as pool:
            elapsed, report = timed(lambda: pool.run_once(NOW))
    else:
        with Transport(settings(app).smtp()) as transport:
            sender = OutboxSender(app, transport, now=lambda: NOW)
            elapsed, report = timed(sender.run_once)
    if report.retried or report.failed:
        raise RuntimeError(f"the sender did not send everything: {report.errors[:3]}")
    return report.sent / elapsed, report.sent


def requeue(app) -> None:  # type: ignore[no-untyped-def]
    """Put every message of the send back in the queue, for another measured run."""
    from sqlalchemy import update

    from service.db import session_scope
    from service.models import OutboundEmail, OutboxStatus

    with session_scope(app) as db:
        db.execute(
            update(OutboundEmail).values(
                status=OutboxStatus.QUEUED, attempts=0, sent_at=None, last_error=""
            )
        )


def run(
    kind: str,
    members: int,
    connections: int,
    port: int,
    workdir: Path,
    repeats: int,
    senders: int = 1,
) -> dict:
    """Best of `repeats` alternating runs of each: the machine is shared, and the best run
    of each is the one least disturbed by others."""
    with fresh_database(kind, workdir) as database:
        app = make_app(database, port, workdir, WG_SMTP_CONNECTIONS=str(connections))
        add_members(app, members)
        queued = announce(app)
        messages = prebuilt_messages(app, SAMPLE)
        size = sum(map(len, messages)) // len(messages)
        baselines, rates = [], []
        for attempt in range(repeats):
            if attempt:
                requeue(app)
            baselines.append(smtplib_rate(port, messages, queued, senders * connections))
            rate, sent = outbox_rate(app, senders)
            rates.append(rate)
            if sent != queued:
                raise RuntimeError(f"sent {sent} of {queued}")
        _dispose(app, database)
    rate, baseline = max(rates), max(baselines)
    log(
        f"delivery {kind} x{connections} conn, {senders} sender(s): {rate:,.0f}/s "
        f"vs smtplib {baseline:,.0f}/s "
        f"({queued} messages of {size} bytes; runs {[round(r) for r in rates]} vs "
        f"{[round(b) for b in baselines]})"
    )
    return {"rate": rate, "baseline": baseline, "sent": queued, "size": size}


def _dispose(app, database: Database) -> None:  # type: ignore[no-untyped-def]
    from service.db import get_database

    get_database(app).engine.dispose()
