"""Meeting invitations as calendar events (RFC 5545 / 5546 / 6047), read back as clients do."""

from __future__ import annotations

import base64
import email
import email.policy
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event, Timezone

from emails.calendar import (
    MeetingEvent,
    attach_calendar,
    cancel_ics,
    request_ics,
    vtimezone,
)

STAMP = datetime(2026, 1, 5, 3, 4, 5, tzinfo=UTC)
STARTS = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)  # 09:00 in Phnom Penh

EVENT = MeetingEvent(
    uid="meeting-42@wg.example",
    sequence=3,
    summary="Monthly meeting",
    description="Agenda:\n1. Reports\nAnswer: https://wg.example/rsvp/abc",
    starts_at=STARTS,
    ends_at=STARTS + timedelta(hours=2),
    timezone="Asia/Phnom_Penh",
    location="Room 2, 12 Street 310, Phnom Penh",
    online_url="https://meet.example/wg-42",
    organizer_email="secretariat@wg.example",
    organizer_name="Working Group Secretariat",
    attendee_email="amara@riverbank.example",
    attendee_name="អមរា សុខ",
)

KHMER_SUMMARY = "កិច្ចប្រជុំប្រចាំខែ, ក្រុមការងារ; ខែមករា"
KHMER_DESCRIPTION = (
    "របៀបវារៈ:\n"
    "១. របាយការណ៍, សកម្មភាព; ផែនការ\n"
    "២. ឆ្លើយតប: https://wg.example/rsvp/abc?lang=km&x=1,2;3\n"
    "\n"
    "សូមអរគុណ\\ សម្រាប់ការចូលរួម"
)
KHMER_LOCATION = "ការិយាល័យ, ផ្លូវ ៣១០; ភ្នំពេញ\nជាន់ទី ២"


def parse(ics: bytes) -> tuple[Calendar, Event]:
    calendar = Calendar.from_ical(ics)
    (event,) = calendar.walk("VEVENT")
    return calendar, event


def timezone_of(calendar: Calendar) -> Timezone:
    (timezone,) = calendar.walk("VTIMEZONE")
    return timezone


# --- REQUEST --------------------------------------------------------------------------------


def test_request_carries_method_uid_sequence_and_utc_stamp() -> None:
    ics = request_ics(EVENT, stamp=STAMP)
    calendar, event = parse(ics)

    assert calendar["METHOD"] == "REQUEST"
    assert calendar["VERSION"] == "2.0"
    assert calendar["CALSCALE"] == "GREGORIAN"
    assert calendar["PRODID"]
    assert event["UID"] == "meeting-42@wg.example"
    assert event["SEQUENCE"] == 3
    assert event["DTSTAMP"].dt == STAMP
    assert event["DTSTAMP"].dt.utcoffset() == timedelta(0)
    assert b"\r\nDTSTAMP:20260105T030405Z\r\n" in ics
    assert event["STATUS"] == "CONFIRMED"
    assert event["TRANSP"] == "OPAQUE"


def test_request_start_and_end_are_phnom_penh_local_times_of_the_given_moments() -> None:
    ics = request_ics(EVENT, stamp=STAMP)
    _, event = parse(ics)

    assert event["DTSTART"].params["TZID"] == "Asia/Phnom_Penh"
    assert event["DTEND"].params["TZID"] == "Asia/Phnom_Penh"
    assert event["DTSTART"].dt == STARTS
    assert event["DTEND"].dt == STARTS + timedelta(hours=2)
    assert b"\r\nDTSTART;TZID=Asia/Phnom_Penh:20260115T090000\r\n" in ics
    assert b"\r\nDTEND;TZID=Asia/Phnom_Penh:20260115T110000\r\n" in ics


def test_request_invites_exactly_one_attendee_to_answer_the_organizer() -> None:
    _, event = parse(request_ics(EVENT, stamp=STAMP))

    organizer = event["ORGANIZER"]
    assert str(organizer) == "mailto:secretariat@wg.example"
    assert organizer.params["CN"] == "Working Group Secretariat"
    attendee = event["ATTENDEE"]
    assert not isinstance(attendee, list)  # exactly one ATTENDEE property
    assert str(attendee) == "mailto:amara@riverbank.example"
    assert attendee.params["CN"] == "អមរា សុខ"
    assert attendee.params["RSVP"] == "TRUE"
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"


def test_request_has_the_address_as_location_and_the_video_link_as_url() -> None:
    _, event = parse(request_ics(EVENT, stamp=STAMP))

    assert event["LOCATION"] == "Room 2, 12 Street 310, Phnom Penh"
    assert event["URL"] == "https://meet.example/wg-42"


def test_online_only_meeting_has_the_video_link_as_location_too() -> None:
    _, event = parse(request_ics(replace(EVENT, location=""), stamp=STAMP))

    assert event["LOCATION"] == "https://meet.example/wg-42"
    assert event["URL"] == "https://meet.example/wg-42"


def test_meeting_in_person_only_has_no_url() -> None:
    _, event = parse(request_ics(replace(EVENT, online_url=""), stamp=STAMP))

    assert event["LOCATION"] == "Room 2, 12 Street 310, Phnom Penh"
    assert "URL" not in event


def test_request_carries_the_phnom_penh_vtimezone_at_plus_seven_without_daylight() -> None:
    calendar, _ = parse(request_ics(EVENT, stamp=STAMP))

    timezone = timezone_of(calendar)
    assert timezone["TZID"] == "Asia/Phnom_Penh"
    assert timezone.walk("DAYLIGHT") == []
    (standard,) = timezone.walk("STANDARD")
    assert standard["TZOFFSETFROM"].td == timedelta(hours=7)
    assert standard["TZOFFSETTO"].td == timedelta(hours=7)
    assert "DTSTART" in standard
    # The VTIMEZONE comes before the VEVENT that refers to it.
    assert [component.name for component in calendar.subcomponents] == ["VTIMEZONE", "VEVENT"]


# --- CANCEL ---------------------------------------------------------------------------------


def test_cancel_keeps_the_uid_with_the_raised_sequence_and_cancelled_status() -> None:
    cancelled = replace(EVENT, sequence=EVENT.sequence + 1)
    calendar, event = parse(cancel_ics(cancelled, stamp=STAMP))

    assert calendar["METHOD"] == "CANCEL"
    assert event["UID"] == EVENT.uid
    assert event["SEQUENCE"] == 4
    assert event["STATUS"] == "CANCELLED"
    assert event["DTSTART"].dt == STARTS
    assert str(event["ORGANIZER"]) == "mailto:secretariat@wg.example"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:amara@riverbank.example"
    assert "RSVP" not in attendee.params
    assert timezone_of(calendar)["TZID"] == "Asia/Phnom_Penh"


# --- time zones -----------------------------------------------------------------------------


def test_berlin_summer_start_is_written_in_local_time_two_hours_after_utc() -> None:
    summer = datetime(2026, 7, 9, 8, 30, tzinfo=UTC)
    berlin = replace(
        EVENT, timezone="Europe/Berlin", starts_at=summer, ends_at=summer + timedelta(hours=1)
    )
    ics = request_ics(berlin, stamp=STAMP)
    calendar, event = parse(ics)

    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event["DTSTART"].dt.replace(tzinfo=None) == datetime(2026, 7, 9, 10, 30)
    assert event["DTSTART"].dt == summer
    assert b"\r\nDTSTART;TZID=Europe/Berlin:20260709T103000\r\n" in ics
    assert b"\r\nDTEND;TZID=Europe/Berlin:20260709T113000\r\n" in ics

    timezone = timezone_of(calendar)
    assert timezone["TZID"] == "Europe/Berlin"
    (daylight,) = timezone.walk("DAYLIGHT")
    (standard,) = timezone.walk("STANDARD")
    assert (daylight["TZOFFSETFROM"].td, daylight["TZOFFSETTO"].td) == (
        timedelta(hours=1),
        timedelta(hours=2),
    )
    assert (standard["TZOFFSETFROM"].td, standard["TZOFFSETTO"].td) == (
        timedelta(hours=2),
        timedelta(hours=1),
    )


def test_berlin_vtimezone_is_the_yearly_rule_outlook_reads() -> None:
    timezone = vtimezone("Europe/Berlin", date(2026, 7, 9), date(2026, 7, 9))
    (daylight,) = timezone.walk("DAYLIGHT")
    (standard,) = timezone.walk("STANDARD")

    # Onsets are local times in the offset before the change (RFC 5545 3.6.5):
    # 02:00 CET and 03:00 CEST are both 01:00 UTC.
    assert daylight["DTSTART"].dt == datetime(2025, 3, 30, 2, 0)
    assert standard["DTSTART"].dt == datetime(2025, 10, 26, 3, 0)
    assert daylight["RRULE"].to_ical() == b"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3"
    assert standard["RRULE"].to_ical() == b"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10"
    assert "RDATE" not in daylight and "RDATE" not in standard


@pytest.mark.parametrize(
    "tzid",
    [
        "Asia/Phnom_Penh",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",  # daylight saving time over the new year
        "America/Santiago",
        "Europe/Dublin",
        "Asia/Jerusalem",
        "Africa/Casablanca",  # moves with Ramadan: no yearly rule, one onset per change
    ],
)
def test_vtimezone_gives_the_offsets_of_zoneinfo_around_the_meeting(tzid: str) -> None:
    zone = ZoneInfo(tzid)
    timezone = vtimezone(tzid, date(2026, 7, 9), date(2026, 7, 9))
    # Expanded as a client does: each onset is read in its TZOFFSETFROM.
    times, infos = timezone.get_transitions()
    changes = sorted(
        (moment.replace(tzinfo=UTC), offset)
        for moment, (offset, _, _) in zip(times, infos, strict=True)
        if moment < datetime(2030, 1, 1)
    )
    assert changes[0][0] <= datetime(2025, 12, 31, tzinfo=UTC)

    moment = max(changes[0][0], datetime(2025, 1, 1, tzinfo=UTC))
    while moment < datetime(2028, 1, 1, tzinfo=UTC):
        written = [offset for changed_at, offset in changes if changed_at <= moment][-1]
        assert written == moment.astimezone(zone).utcoffset(), moment
        moment += timedelta(minutes=30)


def test_utc_meeting_is_written_in_utc_without_vtimezone() -> None:
    calendar, event = parse(request_ics(replace(EVENT, timezone="UTC"), stamp=STAMP))

    assert event["DTSTART"].dt == STARTS
    assert "TZID" not in event["DTSTART"].params
    assert calendar.walk("VTIMEZONE") == []


# --- text -----------------------------------------------------------------------------------


def test_khmer_text_with_commas_semicolons_and_newlines_round_trips_exactly() -> None:
    khmer = replace(
        EVENT, summary=KHMER_SUMMARY, description=KHMER_DESCRIPTION, location=KHMER_LOCATION
    )
    ics = request_ics(khmer, stamp=STAMP)
    _, event = parse(ics)

    assert str(event["SUMMARY"]) == KHMER_SUMMARY
    assert str(event["DESCRIPTION"]) == KHMER_DESCRIPTION
    assert str(event["LOCATION"]) == KHMER_LOCATION
    unfolded = ics.replace(b"\r\n ", b"")
    # UTF-8 as such, with the escapes of RFC 5545 3.3.11.
    assert "ប្រចាំខែ\\, ក្រុមការងារ\\; ខែមករា".encode() in unfolded
    assert "ភ្នំពេញ\\nជាន់ទី ២".encode() in unfolded


def test_carriage_returns_in_text_become_plain_line_breaks() -> None:
    _, event = parse(request_ics(replace(EVENT, description="one\r\ntwo\rthree"), stamp=STAMP))

    assert str(event["DESCRIPTION"]) == "one\ntwo\nthree"


@pytest.mark.parametrize("make", [request_ics, cancel_ics])
def test_every_ics_line_ends_in_crlf_and_is_at_most_75_octets(make) -> None:
    long_khmer = replace(
        EVENT,
        summary=KHMER_SUMMARY * 3,
        description=KHMER_DESCRIPTION * 4,
        location=KHMER_LOCATION * 2,
        organizer_name="លេខាធិការដ្ឋាន ក្រុមការងារ សង្គមស៊ីវិល កម្ពុជា",
        timezone="Europe/Berlin",
    )
    ics = make(long_khmer, stamp=STAMP)

    assert ics.endswith(b"\r\n")
    lines = ics.split(b"\r\n")[:-1]
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert max(len(line) for line in lines) <= 75
    assert any(line.startswith(b" ") for line in lines)  # something was folded
    ics.decode("utf-8")  # folding never splits a character
    assert str(parse(ics)[1]["DESCRIPTION"]) == KHMER_DESCRIPTION * 4


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"starts_at": datetime(2026, 1, 15, 9, 0)},  # naive
        {"ends_at": STARTS},  # ends when it starts
        {"organizer_email": ""},
        {"attendee_email": ""},
        {"online_url": "https://meet.example/x\r\nATTENDEE:mailto:eve@example.org"},
        {"timezone": "Mars/Olympus_Mons"},
    ],
)
def test_an_event_that_cannot_be_an_invitation_is_refused(change) -> None:
    with pytest.raises(ValueError):
        request_ics(replace(EVENT, **change), stamp=STAMP)


def test_a_naive_stamp_is_refused() -> None:
    with pytest.raises(ValueError):
        request_ics(EVENT, stamp=datetime(2026, 1, 5))


# --- the email ------------------------------------------------------------------------------

HEADERS = {
    "From": "Working Group <noreply@wg.example>",
    "To": "អមរា សុខ <amara@riverbank.example>",
    "Subject": "ការអញ្ជើញ: កិច្ចប្រជុំប្រចាំខែ ថ្ងៃទី ១៥ ខែមករា",
    "Date": "Mon, 05 Jan 2026 03:04:05 +0000",
    "Message-ID": "<invite-42-7@wg.example>",
    "List-Id": "Working Group <members.wg.example>",
    "List-Unsubscribe": "<https://wg.example/unsubscribe/abc>, <mailto:unsubscribe@wg.example>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def message() -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    for name, value in HEADERS.items():
        msg[name] = value
    msg.set_content("សូមចូលរួម។\nhttps://wg.example/rsvp/abc\n", subtype="plain", charset="utf-8")
    msg.add_alternative("<p>សូមចូលរួម។</p>", subtype="html", charset="utf-8")
    msg["Content-Language"] = "km"
    return msg


def sent(method: str = "REQUEST") -> tuple[bytes, EmailMessage]:
    make = request_ics if method == "REQUEST" else cancel_ics
    ics = make(replace(EVENT, summary=KHMER_SUMMARY, description=KHMER_DESCRIPTION), stamp=STAMP)
    raw = attach_calendar(message(), ics, method).as_bytes()
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def test_invitation_is_mixed_alternative_text_html_calendar_plus_ics_attachment() -> None:
    _, received = sent()

    assert received.get_content_type() == "multipart/mixed"
    alternative, attachment = received.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_param("name") == "invite.ics"
    assert "សូមចូលរួម" in alternative.get_body(("plain",)).get_content()
    assert "សូមចូលរួម" in alternative.get_body(("html",)).get_content()


def test_invitation_calendar_part_carries_the_method_and_parses_with_the_uid() -> None:
    raw, received = sent()
    calendar_part = next(
        part for part in received.walk() if part.get_content_type() == "text/calendar"
    )

    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_content_charset() == "utf-8"
    assert calendar_part["Content-Transfer-Encoding"] == "base64"
    assert b'Content-Type: text/calendar; method="REQUEST"; charset="utf-8"\r\n' in raw
    content = calendar_part.get_payload(decode=True)
    calendar, event = parse(content)
    assert calendar["METHOD"] == "REQUEST"
    assert event["UID"] == EVENT.uid
    assert str(event["SUMMARY"]) == KHMER_SUMMARY
    # The attachment is the same calendar.
    attachment = received.get_payload()[1]
    assert attachment.get_payload(decode=True) == content


def test_cancellation_calendar_part_carries_method_cancel() -> None:
    _, received = sent("CANCEL")
    calendar_part = next(
        part for part in received.walk() if part.get_content_type() == "text/calendar"
    )

    assert calendar_part.get_param("method") == "CANCEL"
    calendar, event = parse(calendar_part.get_payload(decode=True))
    assert calendar["METHOD"] == "CANCEL"
    assert event["STATUS"] == "CANCELLED"


def header_lines(raw: bytes) -> list[bytes]:
    """The top-level header fields of a serialized message, each unfolded."""
    head, _, _ = raw.partition(b"\r\n\r\n")
    return head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t").split(b"\r\n")


def test_invitation_keeps_every_top_level_header_in_its_place() -> None:
    original = message().as_bytes()
    invitation = message()

    returned = attach_calendar(invitation, request_ics(EVENT, stamp=STAMP), "REQUEST")
    raw = invitation.as_bytes()

    assert returned is invitation
    before, after = header_lines(original), header_lines(raw)
    assert [line.split(b":")[0] for line in after] == [line.split(b":")[0] for line in before]
    content_type = [line.startswith(b"Content-Type:") for line in before]
    assert [line for line, ct in zip(after, content_type, strict=True) if not ct] == [
        line for line, ct in zip(before, content_type, strict=True) if not ct
    ]
    assert [line for line in after if line.startswith(b"Content-Type:")] == [
        b'Content-Type: multipart/mixed; boundary="' + invitation.get_boundary().encode() + b'"'
    ]
    received = email.message_from_bytes(raw, policy=email.policy.default)
    assert received["Message-ID"] == "<invite-42-7@wg.example>"
    assert received["Subject"] == HEADERS["Subject"]
    assert received["List-Unsubscribe"].strip() == HEADERS["List-Unsubscribe"]
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["List-Id"] == HEADERS["List-Id"]
    assert received["Content-Language"] == "km"


def test_invitation_serializes_with_ascii_headers_crlf_and_short_lines() -> None:
    raw, received = sent()

    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    for line in header_lines(raw):
        line.decode("ascii")
    for part in received.walk():
        for name, value in part.raw_items():
            (name + value).encode("ascii")
    # The calendar travels in base64: ASCII whatever the language.
    calendar_part = received.get_payload()[0].get_payload()[2]
    calendar_part.as_bytes().decode("ascii")


def test_attaching_refuses_a_method_the_calendar_does_not_carry() -> None:
    ics = request_ics(EVENT, stamp=STAMP)

    with pytest.raises(ValueError):
        attach_calendar(message(), ics, "CANCEL")
    with pytest.raises(ValueError):
        attach_calendar(message(), ics, "PUBLISH")


def test_attaching_refuses_a_message_that_is_not_text_and_html_alternatives() -> None:
    plain = EmailMessage(policy=email.policy.SMTP)
    plain["Subject"] = "x"
    plain.set_content("only text\n")
    ics = request_ics(EVENT, stamp=STAMP)

    with pytest.raises(ValueError):
        attach_calendar(plain, ics, "REQUEST")
    invitation = attach_calendar(message(), ics, "REQUEST")
    with pytest.raises(ValueError):
        attach_calendar(invitation, ics, "REQUEST")


def test_base64_of_the_calendar_part_decodes_to_the_ics_bytes() -> None:
    ics = request_ics(EVENT, stamp=STAMP)
    raw = attach_calendar(message(), ics, "REQUEST").as_bytes()
    received = email.message_from_bytes(raw, policy=email.policy.default)
    calendar_part = received.get_payload()[0].get_payload()[2]

    assert base64.b64decode(calendar_part.get_payload()) == ics
