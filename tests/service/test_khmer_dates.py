"""Khmer dates and times follow one convention everywhere (docs/khmer-glossary.md): the CLDR
km date patterns in Khmer digits, a 24-hour clock after ម៉ោង, and the zone's name."""

from __future__ import annotations

import re

import icalendar
import pytest

from emails.compose import format_when
from tests.service.test_meetings import add_meeting, calendar_of, local

LINK = re.compile(r"(?:https?|webcal)://[^\s\"'<>]+")
ATTRIBUTE_VALUE = re.compile(r'="[^"]*"')

WHEN = "ព្រហស្បតិ៍ ១៤ មករា ២០២៧, ម៉ោង ១៤:០០ (ម៉ោងនៅកម្ពុជា)"


@pytest.mark.parametrize(
    "width, expected",
    [
        ("full", WHEN),
        ("medium", "១៤ មករា ២០២៧, ម៉ោង ១៤:០០ (ម៉ោងនៅកម្ពុជា)"),
    ],
)
def test_a_khmer_date_has_khmer_digits_a_24_hour_clock_and_no_stray_space(width, expected):
    assert format_when("2027-01-14T07:00:00+00:00", "km", "Asia/Phnom_Penh", width) == expected


def test_khmer_mail_pages_and_calendar_descriptions_write_dates_the_same_way(
    app, client, clock, deliver, smtp_server, make_member
):
    make_member("bopha@memory.example", name="បុប្ផា", language="km")
    clock.set(local(2027, 1, 5, 9, 0))
    add_meeting(app, clock, local(2027, 1, 14, 14, 0))
    deliver()
    mail = smtp_server.single_message_to("bopha@memory.example")
    _, event = calendar_of(mail)
    rsvp = client.get(mail.link("/rsvp/")).get_data(as_text=True)
    member_page = client.get(mail.link("/member/")).get_data(as_text=True)
    feed = client.get(member_page.split('href="webcal://wg.test')[1].split('"')[0])
    (feed_event,) = icalendar.Calendar.from_ical(feed.data).walk("VEVENT")
    descriptions = [str(event["DESCRIPTION"]), str(feed_event["DESCRIPTION"])]

    assert "១៤ មករា ២០២៧" in mail.subject
    for text in (mail.text, mail.html, rsvp, member_page, *descriptions):
        assert WHEN in text
        # Links and form fields carry random tokens, which may well spell "PM" or "2027".
        words = ATTRIBUTE_VALUE.sub("", LINK.sub("", text))
        assert "PM" not in words and "2027" not in words
