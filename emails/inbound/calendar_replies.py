"""Calendar replies: the iTIP REPLY (RFC 5546) a calendar program sends for Accept/Decline.

Any `text/calendar` (or `application/ics`, or `*.ics`) part with METHOD:REPLY, whoever sent it:
calendar services mark their replies as automatic and may send them from a robot address. A
REPLY whose PARTSTAT is none of ACCEPTED, DECLINED, TENTATIVE is UNRELATED; one without UID or
attendee address, or that does not parse, is MALFORMED.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import Any

from icalendar import Calendar

from emails.inbound.kinds import Answer, CalendarReply, Kind
from emails.inbound.parsing import parts, text_of

_PARTSTAT = {"ACCEPTED": Answer.YES, "DECLINED": Answer.NO, "TENTATIVE": Answer.MAYBE}
_CALENDAR_TYPES = {"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"}


def _calendar_parts(message: Message) -> Iterator[Message]:
    for part in parts(message):
        if part.is_multipart():
            continue
        filename = ""
        try:
            filename = (part.get_filename() or "").lower()
        except Exception:
            filename = ""
        if part.get_content_type() in _CALENDAR_TYPES or filename.endswith(".ics"):
            yield part


def find_calendar_reply(
    message: Message, sender: str | None
) -> tuple[Kind, CalendarReply | None, str] | None:
    """(kind, reply, why) of the first METHOD:REPLY part; None when the message has none.

    Among several attendees, the one who is the sender is taken, so a reply is read for the
    person it says it is from; whether that is believed is for the service to decide.
    """
    broken = None
    for part in _calendar_parts(message):
        data = text_of(part)  # in the part's charset: not every client writes UTF-8
        method_param = collapse_rfc2231_value(part.get_param("method") or "")
        claims_reply = method_param.strip().upper() == "REPLY" or bool(
            re.search(r"^METHOD:\s*REPLY\s*$", data, re.I | re.M)
        )
        try:
            calendar = Calendar.from_ical(data)
        except Exception:
            if claims_reply:
                broken = "text/calendar METHOD:REPLY that does not parse"
            continue
        method = str(calendar.get("METHOD", "") or method_param).strip().upper()
        if method != "REPLY":
            continue
        return _calendar_reply(calendar, sender)
    if broken:
        return Kind.MALFORMED, None, broken
    return None


def _mailto(value: object) -> str:
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower() if "@" in text else ""


def _calendar_reply(
    calendar: Calendar, sender: str | None
) -> tuple[Kind, CalendarReply | None, str]:
    events = calendar.walk("VEVENT")
    if not events:
        return Kind.MALFORMED, None, "calendar REPLY without a VEVENT"
    # The master event first; a reply to one occurrence has only events with RECURRENCE-ID.
    event = next((e for e in events if "RECURRENCE-ID" not in e), events[0])
    uid = str(event.get("UID", "") or "").strip()
    if not uid:
        return Kind.MALFORMED, None, "calendar REPLY without UID"

    attendees = event.get("ATTENDEE")
    if attendees is None:
        attendees = []
    elif not isinstance(attendees, list):
        attendees = [attendees]
    candidates = []
    for attendee in attendees:
        params = getattr(attendee, "params", {}) or {}
        address = _mailto(attendee) or _mailto(params.get("EMAIL", ""))
        partstat = str(params.get("PARTSTAT", "NEEDS-ACTION")).strip().upper()
        if address:
            candidates.append((address, partstat))
    if not candidates:
        return Kind.MALFORMED, None, "calendar REPLY without an attendee address"
    chosen = next((c for c in candidates if c[0] == sender), None)
    chosen = chosen or next((c for c in candidates if c[1] in _PARTSTAT), candidates[0])
    address, partstat = chosen
    if partstat not in _PARTSTAT:
        return Kind.UNRELATED, None, f"calendar REPLY with PARTSTAT={partstat}"

    try:
        sequence = int(event.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        sequence = 0
    organizer = _mailto(event.get("ORGANIZER")) or None
    comment = event.get("COMMENT", "")
    if isinstance(comment, list):
        comment = comment[0] if comment else ""
    reply = CalendarReply(
        uid=uid,
        recurrence_id=_recurrence_id(event),
        sequence=sequence,
        attendee=address,
        answer=_PARTSTAT[partstat],
        organizer=organizer,
        comment=str(comment).strip(),
    )
    return Kind.CALENDAR_REPLY, reply, f"text/calendar METHOD:REPLY PARTSTAT={partstat}"


def _recurrence_id(event: Any) -> str | None:
    value = event.get("RECURRENCE-ID")
    if value is None:
        return None
    moment = getattr(value, "dt", None)
    if isinstance(moment, datetime):
        if moment.tzinfo is not None and moment.utcoffset() is not None:
            return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return moment.strftime("%Y%m%dT%H%M%S")
    if isinstance(moment, date):
        return moment.strftime("%Y%m%d")
    try:
        return str(value.to_ical().decode("ascii", "replace"))
    except Exception:
        return str(value)
