"""What the `wg` commands share: reading a time the way users write it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import click

from service.config import settings


def parse_moment(value: str) -> datetime:
    """An ISO date and time as UTC; one without an offset is in WG_TIMEZONE."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings().timezone))
    return moment.astimezone(ZoneInfo("UTC"))
