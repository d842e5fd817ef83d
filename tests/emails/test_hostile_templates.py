"""Every email carries what people typed as text: no field can add markup to the HTML part.

Each template is rendered twice through both composers, once with a plain word in every
text field of its context and once with markup there; the HTML parts must have the same
elements and attributes, and the text part must show the markup as typed (not escaped).
"""

from __future__ import annotations

import copy
import email
import email.policy
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from emails import Sender, Unsubscribe, compose, names
from emails.compose import TEMPLATES, compose_fast, environment
from tests.emails.test_compose import CONTEXTS

PAYLOAD = (
    '</td></tr></table><a href="https://evil.example/review">Review the request</a>'
    "<script>alert(1)</script><img src=x onerror=alert(2)>\"' & {{ 7 * 7 }}"
)
PLAIN = "Plain words"
# Values the service itself chooses (times, zones, enumeration codes), not text anyone types.
CHOSEN_BY_THE_SERVICE = {
    "starts_at",
    "ends_at",
    "old_starts_at",
    "submitted_at",
    "since",
    "now",
    "next_followup",
    "oldest_queued_at",
    "zone",
    "answer",
    "via",
    # Why mail needs a person: a msgid of emails.attention.REASONS, translated as the
    # template's own text; the words that fill it in ("args") come from the message.
    "reason",
    # Announcements: the Markdown is rendered and sanitised before it reaches the template
    # (tests/service/test_markdown.py).
    "body_html",
}


def full_context(name: str) -> dict[str, Any]:
    """The test context of `name` with every optional field present."""
    context = copy.deepcopy(CONTEXTS[name])
    if "meeting" in context:
        context["change"].update(old_location="Old hall", old_online_url="https://old.example")
    if name == names.MEETING_REMINDER:
        context["substitute_for"] = "Sokha"
    if name == names.JOIN_REQUEST_RECEIVED:
        context["request"].update(website="https://riverbank.example", phone="+855 12 345 678")
    return context


def with_text(value: Any, text: str, key: str = "") -> Any:
    """`value` with every string the service does not choose itself replaced by `text`."""
    if isinstance(value, dict):
        return {k: with_text(v, text, k) for k, v in value.items()}
    if isinstance(value, list):
        return [with_text(v, text, key) for v in value]
    if isinstance(value, str) and key not in CHOSEN_BY_THE_SERVICE:
        return text
    return value


class Markup(HTMLParser):
    """The elements and attribute names of an HTML document, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, ...]] = []
        self.text = ""
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, *sorted(name for name, _ in attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.elements.append(("/" + tag,))

    def handle_data(self, data: str) -> None:
        self.text += data


def rendered(name: str, lang: str, text: str) -> list[email.message.EmailMessage]:
    """The message `name` with `text` in every field, from compose() and compose_fast()."""
    sender = Sender(
        from_address=f"{text} <noreply@wg.example>",
        reply_to="secretariat@wg.example",
        group_name=text,
        group_name_km=text,
        list_id="Working Group <members.wg.example>",
    )
    options = dict(
        sender=sender,
        to_name=text,
        message_id="<fixed@wg.example>",
        date=datetime(2026, 12, 1, tzinfo=UTC),
        unsubscribe=Unsubscribe("https://wg.example/unsubscribe/abc", "mailto:u@wg.example"),
        **with_text(full_context(name), text),
    )
    slow = compose(name, "amara@riverbank.example", lang, **options).as_bytes()
    fast = compose_fast(name, "amara@riverbank.example", lang, **options)
    return [email.message_from_bytes(raw, policy=email.policy.default) for raw in (slow, fast)]


@pytest.mark.parametrize("lang", ["en", "km"])
@pytest.mark.parametrize("name", names.ALL)
def test_markup_typed_into_any_field_stays_text_in_the_html_part(name, lang):
    for plain, hostile in zip(
        rendered(name, lang, PLAIN), rendered(name, lang, PAYLOAD), strict=True
    ):
        expected = Markup(plain.get_body(("html",)).get_content())
        html = Markup(hostile.get_body(("html",)).get_content())

        assert html.elements == expected.elements
        assert PAYLOAD in html.text


@pytest.mark.parametrize("lang", ["en", "km"])
@pytest.mark.parametrize("name", names.ALL)
def test_the_text_part_and_subject_show_what_was_typed_unescaped(name, lang):
    for message in rendered(name, lang, PAYLOAD):
        text = message.get_body(("plain",)).get_content()

        assert PAYLOAD in text
        assert "&amp;" not in text and "&lt;" not in text and "&#" not in text
        assert "&amp;" not in message["Subject"]


def test_a_location_with_markup_reaches_the_coordinator_as_text():
    context = full_context(names.JOIN_REQUEST_RECEIVED)
    context["request"]["cambodia_location"] = PAYLOAD
    message = compose(
        names.JOIN_REQUEST_RECEIVED,
        "coordinator@wg.example",
        "en",
        sender=Sender("Working Group <noreply@wg.example>", "s@wg.example", "Working Group"),
        **context,
    )
    html = message.get_body(("html",)).get_content()

    assert "<script>" not in html and 'href="https://evil.example' not in html
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;a href=" in html


def test_every_template_but_plain_text_autoescapes():
    env = environment("en")
    templates = sorted(path.name for path in Path(TEMPLATES).iterdir() if path.is_file())

    assert [t for t in templates if not env.autoescape(t)] == [
        t for t in templates if t.endswith(".txt")
    ]
