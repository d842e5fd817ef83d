"""Audit events: every change of state leaves a line saying who did what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.models import AuditEvent


def record(
    db: Session,
    action: str,
    subject: Any,
    *,
    at: datetime,
    actor: str = "",
    **detail: Any,
) -> AuditEvent:
    """Add an audit event for `subject`: a model instance with an id (flushed first), or the
    name of what changed as a whole (say "outbox")."""
    if isinstance(subject, str):
        subject_type, subject_id = subject, None
    else:
        if getattr(subject, "id", None) is None:
            db.flush()
        subject_type, subject_id = type(subject).__name__.lower(), subject.id
    event = AuditEvent(
        at=at,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        actor=actor,
        detail=detail,
    )
    db.add(event)
    return event
