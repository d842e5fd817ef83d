"""Meeting invitations as calendar events: iCalendar (RFC 5545) sent by iMIP (RFC 6047).

`request_ics` and `cancel_ics` write the iTIP (RFC 5546) REQUEST and CANCEL of one meeting;
`attach_calendar` puts one of them into a message built by `emails.compose`, so that Gmail,
Outlook, Apple Calendar and Thunderbird show the meeting with their own Accept/Decline buttons.

The VTIMEZONE is written from zoneinfo in the shape Outlook reads reliably: one STANDARD and
one DAYLIGHT observance with a yearly RRULE (BYMONTH + BYDAY) when the zone follows such a
rule around the meeting, a single STANDARD observance for a zone without daylight saving time
(Asia/Phnom_Penh), and one observance per transition (DTSTART + RDATE) only for zones whose
transitions follow no yearly rule. Onsets are local times in the offset in force before the
transition (RFC 5545 section 3.6.5).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage, MIMEPart
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import (
    Calendar,
    Event,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vCalAddress,
    vRecur,
)

from emails.text import printable

PRODID = "-//wg-mailer//Meeting invitation//EN"
METHODS = ("REQUEST", "CANCEL")
ATTACHMENT_NAME = "invite.ics"

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True)
class MeetingEvent:
    """One occurrence of the meeting, as one invitee's calendar should show it."""

    uid: str  # stable per invitee and occurrence: invitation_uid()
    sequence: int  # raised on every change (reschedule, cancel)
    summary: str  # the title in the recipient's language
    description: str  # agenda + answer links as plain text
    starts_at: datetime  # aware (any zone); written in `timezone`
    ends_at: datetime
    timezone: str  # IANA, e.g. "Asia/Phnom_Penh"
    location: str = ""  # address; may be ""
    online_url: str = ""  # video link; goes into URL and, when no location, also LOCATION
    organizer_email: str = ""
    organizer_name: str = ""
    attendee_email: str = ""
    attendee_name: str = ""


def invitation_uid(meeting_id: str, contact_id: int, *, secret: str, domain: str) -> str:
    """The event UID of one invitee's copy of a meeting: `meeting-ID-MAC@domain`.

    The MAC (HMAC-SHA256 of the meeting and the invitee under the service's secret) makes every
    invitee's UID their own, so a calendar reply names the invitation it answers and no one can
    write one for another invitee's copy. It depends on nothing that changes, so a reschedule
    or a cancellation updates the same event; and it exists before the invitation does, so the
    member's calendar feed and the emailed invitation are one event, not two.
    """
    message = f"event-uid:{meeting_id}:{contact_id}".encode()
    mac = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]
    return f"meeting-{meeting_id}-{mac}@{domain}"


def request_ics(event: MeetingEvent, *, stamp: datetime) -> bytes:
    """METHOD:REQUEST calendar with one VEVENT and the VTIMEZONE of event.timezone."""
    return _calendar(event, "REQUEST", stamp).to_ical()


def cancel_ics(event: MeetingEvent, *, stamp: datetime) -> bytes:
    """METHOD:CANCEL, STATUS:CANCELLED, same UID, the (raised) SEQUENCE."""
    return _calendar(event, "CANCEL", stamp).to_ical()


def attach_calendar(message: EmailMessage, ics: bytes, method: str) -> EmailMessage:
    """Turn a multipart/alternative message (text, HTML) into an invitation, and return it.

    The message is changed in place into
    multipart/mixed{ multipart/alternative{ text/plain, text/html,
    text/calendar; method=METHOD; charset="utf-8" }, application/ics; name=invite.ics }.
    Every top-level header is kept as it was, in its place; only the Content-Type becomes
    multipart/mixed (the generator gives it a new boundary).
    """
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"unsupported iTIP method {method!r}")
    if f"\r\nMETHOD:{method}\r\n".encode() not in ics:
        raise ValueError(f"the calendar does not carry METHOD:{method}")
    if message.get_content_type() != "multipart/alternative":
        raise ValueError(
            f"expected a multipart/alternative message, not {message.get_content_type()}"
        )
    parts = list(message.iter_parts())
    if any(part.get_content_type() == "text/calendar" for part in parts):
        raise ValueError("the message already carries a calendar")

    inline = MIMEPart(policy=message.policy)
    # The email package writes every parameter quoted (method="REQUEST"), which MIME reads
    # as the token itself (RFC 2045 5.1).
    inline.set_content(
        ics,
        maintype="text",
        subtype="calendar",
        cte="base64",
        params={"method": method, "charset": "utf-8"},
    )

    alternative = MIMEPart(policy=message.policy)
    alternative["Content-Type"] = "multipart/alternative"
    alternative.set_payload([*parts, inline])

    attachment = MIMEPart(policy=message.policy)
    attachment.set_content(
        ics,
        maintype="application",
        subtype="ics",
        cte="base64",
        disposition="attachment",
        filename=ATTACHMENT_NAME,
        params={"name": ATTACHMENT_NAME},
    )

    # replace_header keeps the header where it was among the others.
    message.replace_header("Content-Type", "multipart/mixed")
    message.set_payload([alternative, attachment])
    return message


@dataclass(frozen=True)
class FeedEvent:
    """One meeting as a published calendar (a subscription feed, or one event to download)."""

    uid: str  # stable per meeting (or per invitee, to match their invitation's event)
    sequence: int
    summary: str
    description: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    modified_at: datetime  # when the meeting last changed: DTSTAMP and LAST-MODIFIED
    location: str = ""
    online_url: str = ""
    cancelled: bool = False


# How often a subscribed calendar should fetch the feed again (RFC 7986, and what Outlook reads).
FEED_REFRESH = timedelta(hours=6)
FEED_PRODID = "-//wg-mailer//Meeting calendar//EN"


def publish_ics(events: list[FeedEvent], *, name: str, zone: str) -> bytes:
    """METHOD:PUBLISH calendar of `events`: what Google Calendar, Outlook and Apple Calendar
    subscribe to (webcal://) or import. A cancelled meeting stays as STATUS:CANCELLED with a
    higher SEQUENCE, so a calendar that had it marks or drops it rather than keeping it."""
    calendar = Calendar()
    calendar.add("PRODID", FEED_PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    calendar.add("METHOD", "PUBLISH")
    calendar.add("X-WR-CALNAME", _text(name))
    calendar.add("NAME", _text(name))
    calendar.add("X-WR-TIMEZONE", zone)
    calendar.add("REFRESH-INTERVAL", FEED_REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("X-PUBLISHED-TTL", "PT6H")  # Outlook reads this one; the same six hours
    days: dict[str, list[date]] = {}
    vevents = []
    for event in events:
        event_zone, starts_at, ends_at = _times(event)
        modified = _aware(event.modified_at, "modified_at").astimezone(UTC)
        vevent = _event(event, starts_at, ends_at, stamp=modified)
        vevent.add("LAST-MODIFIED", modified)
        vevent.add("STATUS", "CANCELLED" if event.cancelled else "CONFIRMED")
        vevent.add("TRANSP", "TRANSPARENT" if event.cancelled else "OPAQUE")
        vevents.append(vevent)
        if "TZID" in vevent["DTSTART"].params:
            days.setdefault(event_zone.key, []).extend([starts_at.date(), ends_at.date()])
    for tzid, moments in sorted(days.items()):
        calendar.add_component(vtimezone(tzid, min(moments), max(moments)))
    for vevent in vevents:
        calendar.add_component(vevent)
    return calendar.to_ical()


# --- the calendar -------------------------------------------------------------------------


def _times(event: MeetingEvent | FeedEvent) -> tuple[ZoneInfo, datetime, datetime]:
    """The event's zone, and its start and end in that zone (written with its TZID)."""
    try:
        zone = ZoneInfo(event.timezone)
    except ZoneInfoNotFoundError as error:
        raise ValueError(f"unknown time zone {event.timezone!r}") from error
    starts_at = _aware(event.starts_at, "starts_at").astimezone(zone)
    return zone, starts_at, _aware(event.ends_at, "ends_at").astimezone(zone)


def _event(
    event: MeetingEvent | FeedEvent, starts_at: datetime, ends_at: datetime, *, stamp: datetime
) -> Event:
    """The VEVENT properties an invitation and a feed share: when, what and where."""
    vevent = Event()
    vevent.add("UID", _text(event.uid))
    vevent.add("SEQUENCE", event.sequence)
    vevent.add("DTSTAMP", stamp)
    vevent.add("DTSTART", starts_at)
    vevent.add("DTEND", ends_at)
    vevent.add("SUMMARY", _text(event.summary))
    if event.description:
        vevent.add("DESCRIPTION", _text(event.description))
    location = event.location or event.online_url
    if location:
        vevent.add("LOCATION", _text(location))
    if event.online_url:
        vevent.add("URL", _uri(event.online_url))
    return vevent


def _calendar(event: MeetingEvent, method: str, stamp: datetime) -> Calendar:
    zone, starts_at, ends_at = _times(event)
    stamp = _aware(stamp, "stamp").astimezone(UTC)
    if ends_at <= starts_at:
        raise ValueError("the meeting must end after it starts")
    if not event.uid.strip():
        raise ValueError("the event needs a UID")
    if not event.organizer_email or not event.attendee_email:
        raise ValueError(f"an iTIP {method} needs an organizer and an attendee")

    vevent = _event(event, starts_at, ends_at, stamp=stamp)
    vevent.add("STATUS", "CONFIRMED" if method == "REQUEST" else "CANCELLED")
    vevent.add("TRANSP", "OPAQUE")
    vevent.add("ORGANIZER", _address(event.organizer_email, event.organizer_name))
    attendee_params = {"ROLE": "REQ-PARTICIPANT"}
    if method == "REQUEST":
        attendee_params |= {"PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"}
    vevent.add("ATTENDEE", _address(event.attendee_email, event.attendee_name, **attendee_params))

    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    calendar.add("METHOD", method)
    # UTC (and its aliases) is written with "Z" and needs no VTIMEZONE (RFC 5545 3.2.19).
    if "TZID" in vevent["DTSTART"].params:
        calendar.add_component(vtimezone(zone.key, starts_at.date(), ends_at.date()))
    calendar.add_component(vevent)
    return calendar


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return moment


def _text(value: str) -> str:
    """TEXT as RFC 5545 3.3.11 allows it: no controls, line breaks as LF (escaped by icalendar)."""
    return printable(value.replace("\r\n", "\n").replace("\r", "\n"))


def _uri(value: str) -> str:
    if not value or any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError(f"not a URI: {value!r}")
    return value


def _address(email: str, name: str, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{_uri(email)}")
    cleaned = " ".join(printable(name).split())
    if cleaned:
        address.params["CN"] = cleaned
    for key, value in params.items():
        address.params[key] = value
    return address


# --- the time zone ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Transition:
    onset: datetime  # naive local time in the offset before the change (RFC 5545 3.6.5)
    offset_from: timedelta
    offset_to: timedelta
    name: str  # TZNAME after the change

    @property
    def daylight(self) -> bool:
        return self.offset_to > self.offset_from


def vtimezone(tzid: str, first: date, last: date) -> Timezone:
    """The VTIMEZONE of `tzid`, valid for the days from `first` to `last` and a year around.

    One observance per kind with a yearly RRULE when the zone follows such a rule (what
    Google Calendar and Outlook write), a single STANDARD observance for a zone without
    transitions, one observance per transition (DTSTART + RDATE) otherwise.
    """
    years = range(first.year - 1, last.year + 2)
    transitions = _transitions(tzid, years.start, years.stop)
    timezone = Timezone()
    timezone.add("TZID", tzid)
    opening = datetime(years.start, 1, 1, tzinfo=UTC).astimezone(ZoneInfo(tzid))
    opening_offset = opening.utcoffset() or timedelta()
    if not transitions:
        # The zone keeps one offset: one STANDARD observance, as Google Calendar writes it.
        timezone.add_component(
            _observance(
                TimezoneStandard(),
                datetime(1970, 1, 1),
                opening_offset,
                opening_offset,
                opening.tzname(),
            )
        )
        return timezone

    rules = _yearly_rules(transitions, len(years))
    if rules is not None:
        for first_transition, rule in rules:
            observance = _observance(
                TimezoneDaylight() if first_transition.daylight else TimezoneStandard(),
                first_transition.onset,
                first_transition.offset_from,
                first_transition.offset_to,
                first_transition.name,
            )
            observance.add("RRULE", rule)
            timezone.add_component(observance)
        return timezone

    # No yearly rule: the offset in force at the start of the window, then every change.
    timezone.add_component(
        _observance(
            TimezoneDaylight() if opening.dst() else TimezoneStandard(),
            opening.replace(tzinfo=None),
            opening_offset,
            opening_offset,
            opening.tzname(),
        )
    )
    groups: dict[tuple[bool, timedelta, timedelta, str], list[datetime]] = {}
    for transition in transitions:
        key = (transition.daylight, transition.offset_from, transition.offset_to, transition.name)
        groups.setdefault(key, []).append(transition.onset)
    for (daylight, offset_from, offset_to, name), onsets in groups.items():
        observance = _observance(
            TimezoneDaylight() if daylight else TimezoneStandard(),
            onsets[0],
            offset_from,
            offset_to,
            name,
        )
        if onsets[1:]:
            observance.add("RDATE", onsets[1:])
        timezone.add_component(observance)
    return timezone


def _observance(
    observance: TimezoneStandard | TimezoneDaylight,
    onset: datetime,
    offset_from: timedelta,
    offset_to: timedelta,
    name: str | None,
) -> TimezoneStandard | TimezoneDaylight:
    observance.add("DTSTART", onset)
    observance.add("TZOFFSETFROM", offset_from)
    observance.add("TZOFFSETTO", offset_to)
    if name:
        observance.add("TZNAME", name)
    return observance


@lru_cache(maxsize=64)
def _transitions(tzid: str, first_year: int, stop_year: int) -> tuple[_Transition, ...]:
    """Every change of UTC offset of `tzid` from 1 January `first_year` to `stop_year`."""
    zone = ZoneInfo(tzid)

    def offset(moment: datetime) -> timedelta:
        return moment.astimezone(zone).utcoffset() or timedelta()

    found = []
    day = timedelta(days=1)
    moment = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(stop_year, 1, 1, tzinfo=UTC)
    while moment < end:
        following = moment + day
        before, after = offset(moment), offset(following)
        if before != after:
            low, high = moment, following  # offset(low) == before, offset(high) != before
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if offset(middle) == before:
                    low = middle
                else:
                    high = middle
            changed_to = offset(high)
            found.append(
                _Transition(
                    onset=(high + before).replace(tzinfo=None),
                    offset_from=before,
                    offset_to=changed_to,
                    name=high.astimezone(zone).tzname() or "",
                )
            )
        moment = following
    return tuple(found)


def _yearly_rules(
    transitions: tuple[_Transition, ...], year_count: int
) -> list[tuple[_Transition, vRecur]] | None:
    """(first transition, RRULE) per kind when each kind recurs once a year by one rule."""
    kinds: dict[bool, list[_Transition]] = {}
    for transition in transitions:
        kinds.setdefault(transition.daylight, []).append(transition)
    if set(kinds) != {True, False}:
        return None
    rules = []
    for kind in (True, False):
        same = kinds[kind]
        if len(same) != year_count or len({t.onset.year for t in same}) != year_count:
            return None
        first = same[0]
        shape = (first.offset_from, first.offset_to, first.name)
        if any((t.offset_from, t.offset_to, t.name) != shape for t in same):
            return None
        if any(
            (t.onset.month, t.onset.weekday(), t.onset.time())
            != (first.onset.month, first.onset.weekday(), first.onset.time())
            for t in same
        ):
            return None
        ordinals = set.intersection(*(_ordinals(t.onset) for t in same))
        if not ordinals:
            return None
        ordinal = max(ordinals)  # "2SU" rather than "-4SU"; "-1SU" when only that fits
        rule = vRecur(
            {
                "FREQ": "YEARLY",
                "BYMONTH": first.onset.month,
                "BYDAY": f"{ordinal}{_WEEKDAYS[first.onset.weekday()]}",
            }
        )
        rules.append((first, rule))
    return rules


def _ordinals(onset: datetime) -> set[int]:
    """The n of "n-th weekday of the month" that `onset` is: from the start, or -1 if last."""
    ordinals = {(onset.day - 1) // 7 + 1}
    if (onset + timedelta(days=7)).month != onset.month:
        ordinals.add(-1)
    return ordinals
