"""When meeting mail is due: occurrences of a series and the morning sending window."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr


class RuleError(ValueError):
    """An RRULE that cannot be read."""


def parse_rule(rule: str, first_start: datetime, zone: str) -> object:
    """The rule as dateutil reads it, anchored at the first start in the group's zone.

    Occurrences are computed in local time, so "14:00 on the second Thursday" stays 14:00
    whatever the UTC offset of that day.
    """
    if "\n" in rule or "\r" in rule or len(rule) > 500:
        raise RuleError("an RRULE is one line, such as FREQ=MONTHLY;BYDAY=2TH")
    text = rule.strip().removeprefix("RRULE:")
    local_start = first_start.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    try:
        return rrulestr(text, dtstart=local_start)
    except (ValueError, TypeError) as exc:
        raise RuleError(f"{rule!r} is not an RFC 5545 RRULE: {exc}") from None


def occurrences(
    rule: str,
    first_start: datetime,
    zone: str,
    *,
    after: datetime,
    before: datetime,
    until: datetime | None = None,
) -> list[datetime]:
    """The series' starts in [after, before] (and not after `until`), as UTC instants."""
    tz = ZoneInfo(zone)
    parsed = parse_rule(rule, first_start, zone)
    local_after = after.astimezone(tz).replace(tzinfo=None)
    local_before = before.astimezone(tz).replace(tzinfo=None)
    found = []
    for local in parsed.between(local_after, local_before, inc=True):  # type: ignore[attr-defined]
        moment = local.replace(tzinfo=tz).astimezone(UTC)
        if until is not None and moment > until:
            break
        found.append(moment)
    return found


def due_at(starts_at: datetime, days_before: int, zone: str, window: tuple[time, time]) -> datetime:
    """When a mail `days_before` a meeting becomes due: that day's window opening, local time."""
    tz = ZoneInfo(zone)
    day: date = (starts_at.astimezone(tz) - timedelta(days=days_before)).date()
    return datetime.combine(day, window[0], tzinfo=tz).astimezone(UTC)


def in_window(now: datetime, zone: str, window: tuple[time, time]) -> bool:
    """Meeting mail goes out in the morning of the group's time zone, never at night."""
    local = now.astimezone(ZoneInfo(zone)).time()
    return window[0] <= local < window[1]


def first_dates(rule: str, first_start: datetime, zone: str, count: int) -> list[datetime]:
    """The first `count` starts the rule gives from `first_start` on, as UTC instants."""
    tz = ZoneInfo(zone)
    parsed = parse_rule(rule, first_start, zone)
    found = []
    for local in parsed:  # type: ignore[attr-defined]
        found.append(local.replace(tzinfo=tz).astimezone(UTC))
        if len(found) == count:
            break
    return found


def local_text(moment: datetime, zone: str) -> str:
    """A moment as the coordinator typed it: local date and time, e.g. "2027-01-14 14:00"."""
    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}"
