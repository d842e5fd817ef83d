"""Headers that carry a name (From, To, Reply-To, List-Id) read back as the one intended address.

Names are typed by the public (an applicant's name) or configured (the group's name), so any
Unicode text is tried: commas, quotes, angle brackets, text that looks like an encoded-word,
scripts other than Latin, names longer than a line.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import unquote

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from emails import HeaderInjection, Sender, Unsubscribe, compose, names
from emails.compose import compose_fast

SENDER = Sender(
    from_address="Working Group <noreply@wg.example>",
    reply_to="secretariat@wg.example",
    group_name="Working Group",
    list_id="Working Group <members.wg.example>",
)
TO = "amara@riverbank.example"
CONTEXT = {"organisation_name": "Riverbank Survivors Network"}
UNSUBSCRIBE = Unsubscribe(
    "https://wg.example/unsubscribe/AbCdEfGhIjKlMnOpQrStUv",
    "mailto:secretariat@wg.example?subject=unsubscribe%20AbCdEfGhIjKlMnOpQrStUv",
)
HOSTILE_NAMES = [
    "Sokha Chan <boss@partner.example>, Programme Officer",
    "Sokha Chan <boss@partner.example>, Programme Officer of the Riverbank Survivors Network",
    "x" * 100 + ", y <boss@partner.example>",
    '"Quoted" \\ and, comma',
    "=?utf-8?q?boss=40partner.example?= <boss@partner.example>",
    "សុខ ចន្ទា, <boss@partner.example>",
    "ស" * 80,
    "Tab\tand\x0bvertical\x1cseparators",
    "Null\x00 and bell\x07",
    "",
    "   ",
]
# Any text but a line break, which is refused (see the last test), and lone surrogates,
# which are no characters.
NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=150
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def messages(sender: Sender, to_name: str = "Dara") -> list[bytes]:
    """The same list message (which has every named header) from both composers."""
    options = dict(
        sender=sender,
        to_name=to_name,
        unsubscribe=UNSUBSCRIBE,
        message_id="<fixed@wg.example>",
        date=datetime(2026, 12, 1, tzinfo=UTC),
        **CONTEXT,
    )
    return [
        compose(names.JOIN_WELCOME, TO, "en", **options).as_bytes(),
        compose_fast(names.JOIN_WELCOME, TO, "en", **options),
    ]


def raw_value(raw: bytes, field: str) -> str:
    """The header's value as written, unfolded (CRLF before a space removed)."""
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii").replace("\r\n ", " ")
    (line,) = [x for x in head.split("\r\n") if x.lower().startswith(field.lower() + ":")]
    return line.partition(":")[2].strip()


def rfc_name(value: str) -> str:
    """The display name as an RFC 2047 reader shows it, who drops the space between two
    encoded-words (Python's address parser keeps it)."""
    if not value.endswith(">"):
        return ""
    phrase = value[: value.rindex("<")].strip()
    if phrase.startswith('"'):
        return unquote(phrase)
    return str(make_header(decode_header(phrase)))


def assert_header_section_is_ascii_and_short(raw: bytes) -> None:
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.isascii()
    assert max(len(line) for line in head.split(b"\r\n")) <= 998


def assert_one_mailbox(raw: bytes, field: str, name: str, address: str) -> None:
    assert_header_section_is_ascii_and_short(raw)
    intended = " ".join(name.split())
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    (mailbox,) = parsed[field].addresses
    assert mailbox.addr_spec == address
    assert "".join(mailbox.display_name.split()) == "".join(intended.split())
    assert rfc_name(raw_value(raw, field)) == intended


def configured(name: str, address: str) -> str:
    """A mailbox as the settings hold it: the name unquoted, as `Name <address>`."""
    return f"{name} <{address}>" if name.strip() else address


@SETTINGS
@given(name=NAMES)
@example(name=HOSTILE_NAMES[0])
@example(name=HOSTILE_NAMES[2])
@example(name=HOSTILE_NAMES[4])
def test_to_reads_back_as_exactly_the_recipient_for_any_name(name):
    for raw in messages(SENDER, to_name=name):
        assert_one_mailbox(raw, "To", name, TO)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_make_one_to_address(name):
    for raw in messages(SENDER, to_name=name):
        assert_one_mailbox(raw, "To", name, TO)


@SETTINGS
@given(name=NAMES)
@example(name="Working Group, Cambodia <boss@partner.example>")
def test_from_reads_back_as_exactly_the_sender_for_any_group_name(name):
    assume(not name.strip().startswith('"'))  # a leading quote would read as quoting
    sender = replace(SENDER, from_address=configured(name, "noreply@wg.example"))
    for raw in messages(sender):
        assert_one_mailbox(raw, "From", name, "noreply@wg.example")


@SETTINGS
@given(name=NAMES)
@example(name="Secretariat, Legal Aid <boss@partner.example>")
def test_reply_to_reads_back_as_exactly_the_secretariat_for_any_name(name):
    assume(not name.strip().startswith('"'))
    sender = replace(SENDER, reply_to=configured(name, "secretariat@wg.example"))
    for raw in messages(sender):
        assert_one_mailbox(raw, "Reply-To", name, "secretariat@wg.example")


@SETTINGS
@given(name=NAMES)
@example(name="Working Group <evil.example>, x")
def test_list_id_keeps_exactly_its_id_for_any_group_name(name):
    assume(not name.strip().startswith('"'))
    sender = replace(SENDER, list_id=configured(name, "members.wg.example"))
    for raw in messages(sender):
        assert_header_section_is_ascii_and_short(raw)
        value = raw_value(raw, "List-Id")
        assert value.endswith(" <members.wg.example>") or value == "<members.wg.example>"
        assert rfc_name(value) == " ".join(name.split())


def test_a_short_khmer_name_reads_back_exactly_with_every_parser():
    for raw in messages(SENDER, to_name="សុខ  ចន្ទា"):
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["To"].addresses[0].display_name == "សុខ ចន្ទា"


def test_a_long_name_is_folded_at_78_characters_without_losing_its_quotes():
    name = HOSTILE_NAMES[1]
    for raw in messages(SENDER, to_name=name):
        head = raw.partition(b"\r\n\r\n")[0]
        to_lines = head.split(b"\r\nTo: ")[1].split(b"\r\nReply-To")[0].split(b"\r\n")
        assert len(to_lines) > 1
        assert all(len(line) <= 78 for line in head.split(b"\r\n"))
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["To"].addresses[0].display_name == name


@pytest.mark.parametrize("name", ["Amara\r\nBcc: x@example.org", "Amara\nBcc: x@example.org"])
def test_a_line_break_in_a_name_is_refused_by_both_composers(name):
    with pytest.raises(HeaderInjection):
        compose(names.JOIN_WELCOME, TO, "en", sender=SENDER, to_name=name, **CONTEXT)
    with pytest.raises(HeaderInjection):
        compose_fast(names.JOIN_WELCOME, TO, "en", sender=SENDER, to_name=name, **CONTEXT)
