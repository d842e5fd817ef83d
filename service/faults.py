"""Faults of the service's own mail set-up, kept where every process can see them.

The sender records one when the relay, TLS, the login or our envelope sender is refused, and
clears it when mail goes through again; `/healthz`, `wg outbox` and the digest read it. While
one is open the sender tries the relay once a minute, not once a message.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import insert_ignoring_duplicates
from service.models import DeliveryFault

log = logging.getLogger(__name__)

SMTP = "smtp"
IMAP = "imap"
# How often a process tries again while a fault is open: often enough to notice the repair
# within a minute, rarely enough not to look like an attack to the relay (fail2ban).
PROBE_EVERY = timedelta(minutes=1)


def open_fault(db: Session, channel: str) -> DeliveryFault | None:
    """The fault of `channel` that has not been cleared, if any."""
    return db.scalar(
        select(DeliveryFault).where(
            DeliveryFault.channel == channel, DeliveryFault.cleared_at.is_(None)
        )
    )


def probe_due(fault: DeliveryFault | None, now: datetime) -> bool:
    """Whether to try the channel now: always without a fault, once a minute with one."""
    return fault is None or now >= fault.last_seen_at + PROBE_EVERY


def probe_now(db: Session, channel: str, *, now: datetime) -> None:
    """Let the next run try `channel` at once instead of waiting out the minute."""
    fault = open_fault(db, channel)
    if fault is not None:
        fault.last_seen_at = min(fault.last_seen_at, now - PROBE_EVERY)


def record_fault(db: Session, channel: str, *, kind: str, detail: str, now: datetime) -> None:
    """Open (or keep open) the fault of `channel`, and say so in the log: once per probe."""
    insert_ignoring_duplicates(
        db,
        DeliveryFault,
        ("channel",),
        dict(channel=channel, kind=kind, detail="", since_at=now, last_seen_at=now),
    )
    fault = db.scalars(
        select(DeliveryFault).where(DeliveryFault.channel == channel).with_for_update()
    ).one()
    if fault.cleared_at is not None:
        fault.since_at, fault.cleared_at = now, None
    fault.kind, fault.detail, fault.last_seen_at = kind, detail[:1000], now
    db.flush()
    log.error("%s is not working since %s: %s", channel.upper(), fault.since_at.isoformat(), detail)


def clear_fault(db: Session, channel: str, *, now: datetime) -> bool:
    """Close the open fault of `channel`; True when there was one."""
    fault = open_fault(db, channel)
    if fault is None:
        return False
    fault.cleared_at = now
    db.flush()
    log.warning("%s works again (it failed from %s)", channel.upper(), fault.since_at.isoformat())
    return True


def describe(fault: DeliveryFault) -> str:
    """One line for people: what fails, since when."""
    return f"{fault.channel} {fault.kind} fault since {fault.since_at.isoformat()}: {fault.detail}"
