"""The fast path for sends to many: the same messages as compose(), built from a skeleton."""

from __future__ import annotations

import email
import email.policy
import importlib
from datetime import UTC, datetime

import pytest

from emails import Unsubscribe, compose, names
from emails.compose import compose_fast
from tests.emails.test_compose import CONTEXTS, SENDER

DATE = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
NAMES = [
    "អមរា សុខ",
    "Dara Sok",
    "",
    'Dara "the elder", Sok',
    "Sok.Dara (WG)",
    "ស" * 60,
    "Amara  Sok",
    " Leading space",
    "Ünïcode Nâme & <Co>",
    "Channthy Sok Sovannarith Chhay Vannak Heng Pisey Long Name Of A Representative",
]


def unsubscribe_for(token: str) -> Unsubscribe:
    return Unsubscribe(
        f"https://wg.example/unsubscribe/{token}",
        f"mailto:secretariat@wg.example?subject=unsubscribe%20{token}",
    )


def both(name: str, lang: str, *, to_name: str, token: str | None, **extra):
    options = dict(
        sender=SENDER,
        to_name=to_name,
        message_id=f"<{token or 'fixed'}@wg.example>",
        date=DATE,
        unsubscribe=unsubscribe_for(token) if token else None,
        **{**CONTEXTS[name], **extra},
    )
    slow = compose(name, "amara@riverbank.example", lang, **options).as_bytes()
    fast = compose_fast(name, "amara@riverbank.example", lang, **options)
    return slow, fast


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def shape(raw: bytes) -> list:
    """Every header and part of a message as parsed, the MIME boundary left out."""
    described = []
    for part in parse(raw).walk():
        headers = []
        for key, value in part.items():
            if key.lower() == "content-type":
                params = {k: v for k, v in value.params.items() if k != "boundary"}
                headers.append((key, value.content_type, params))
            elif key.lower() == "content-transfer-encoding":
                headers.append((key, str(value)))
            elif key.lower() in ("to", "from", "reply-to"):
                headers.append(
                    (key, str(value), [(a.display_name, a.addr_spec) for a in value.addresses])
                )
            else:
                headers.append((key, str(value)))
        content = None if part.is_multipart() else part.get_content()
        described.append((headers, content))
    return described


def assert_valid_bytes(raw: bytes) -> None:
    head, _, _ = raw.partition(b"\r\n\r\n")
    assert head.isascii(), "header bytes must be ASCII"
    assert b"\n" not in raw.replace(b"\r\n", b""), "every line ends in CRLF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "no bare CR"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert all(len(line) <= 78 for line in head.split(b"\r\n")), "headers folded at 78"


@pytest.mark.parametrize("lang", ["en", "km"])
@pytest.mark.parametrize("name", names.ALL)
def test_fast_message_parses_to_the_same_headers_and_parts_as_compose(name, lang):
    for to_name, token in [("អមរា សុខ", "Tok1AbCdEfGhIjKlMnOpQr"), ("Dara Sok", None)]:
        slow, fast = both(name, lang, to_name=to_name, token=token)

        assert_valid_bytes(fast)
        assert shape(fast) == shape(slow)


@pytest.mark.parametrize("to_name", NAMES)
def test_names_of_every_kind_come_out_as_compose_writes_them(to_name):
    slow, fast = both(names.JOIN_WELCOME, "km", to_name=to_name, token="Tok2AbCdEfGhIjKlMnOpQr")

    assert_valid_bytes(fast)
    assert shape(fast) == shape(slow)
    assert (
        parse(fast)["To"].addresses[0].display_name == parse(slow)["To"].addresses[0].display_name
    )


def test_each_message_of_a_send_carries_its_own_id_links_and_name():
    """One skeleton serves the whole send; only the personal parts differ between messages."""
    messages = []
    for n in range(3):
        token = f"Personal{n}TokenXyZaBcDeF"
        messages.append(
            compose_fast(
                names.ANNOUNCEMENT,
                f"member{n}@riverbank.example",
                "km",
                sender=SENDER,
                to_name=f"សមាជិក {n}",
                message_id=f"<m{n}@wg.example>",
                date=DATE,
                unsubscribe=unsubscribe_for(token),
                **CONTEXTS[names.ANNOUNCEMENT],
            )
        )
    for n, raw in enumerate(messages):
        parsed = parse(raw)
        text = parsed.get_body(("plain",)).get_content()
        html = parsed.get_body(("html",)).get_content()
        token = f"Personal{n}TokenXyZaBcDeF"
        assert parsed["Message-ID"] == f"<m{n}@wg.example>"
        assert parsed["To"] == f"សមាជិក {n} <member{n}@riverbank.example>"
        assert f"https://wg.example/unsubscribe/{token}" in parsed["List-Unsubscribe"]
        assert f"https://wg.example/unsubscribe/{token}" in text
        assert f'href="https://wg.example/unsubscribe/{token}"' in html
        assert all(f"Personal{m}" not in raw.decode("ascii", "replace") for m in range(3) if m != n)


def test_personal_links_of_meeting_mail_are_filled_in_per_recipient():
    context = {**CONTEXTS[names.MEETING_INVITATION]}
    for n in range(2):
        base = f"https://wg.example/rsvp/Rsvp{n}Token"
        answers = {a: f"{base}?answer={a}" for a in ("yes", "no", "maybe")}
        extra = {"rsvp_url": base, "answer_urls": answers}
        slow, fast = both(
            names.MEETING_INVITATION,
            "en",
            to_name=f"Member {n}",
            token=f"Un{n}",
            **{**context, **extra},
        )
        assert shape(fast) == shape(slow)
        assert f"{base}?answer=yes" in parse(fast).get_body(("html",)).get_content()


def test_html_special_characters_in_a_name_are_escaped_in_html_only():
    slow, fast = both(names.JOIN_WELCOME, "en", to_name="Dara <b>&</b> Sok", token="Tok3")

    text = parse(fast).get_body(("plain",)).get_content()
    html = parse(fast).get_body(("html",)).get_content()
    assert "Dara <b>&</b> Sok" in text
    assert "Dara &lt;b&gt;&amp;&lt;/b&gt; Sok" in html
    assert shape(fast) == shape(slow)


def test_a_filter_on_a_personal_value_falls_back_to_rendering_per_recipient(monkeypatch):
    module = importlib.import_module("emails.compose")
    real_render = module.render

    def shouting(name, lang, context):
        subject, text, html = real_render(name, lang, context)
        return (
            subject,
            text.replace(context["recipient_name"], context["recipient_name"].upper()),
            html,
        )

    monkeypatch.setattr(module, "render", shouting)
    module._skeletons.clear()
    raw = compose_fast(
        names.JOIN_WELCOME,
        "a@riverbank.example",
        "en",
        sender=SENDER,
        to_name="Dara",
        **CONTEXTS[names.JOIN_WELCOME],
    )

    assert "Dear DARA," in parse(raw).get_body(("plain",)).get_content()
    module._skeletons.clear()


def test_line_breaks_in_personal_headers_are_refused():
    from emails import HeaderInjection

    with pytest.raises(HeaderInjection):
        compose_fast(
            names.JOIN_WELCOME,
            "a@riverbank.example",
            "en",
            sender=SENDER,
            to_name="Amara\r\nBcc: x@example.org",
            **CONTEXTS[names.JOIN_WELCOME],
        )
    with pytest.raises(HeaderInjection):
        compose_fast(
            names.JOIN_WELCOME,
            "a@riverbank.example",
            "en",
            sender=SENDER,
            unsubscribe=Unsubscribe("https://wg.example/u/x\r\nBcc: y@example.org", "mailto:a@b"),
            **CONTEXTS[names.JOIN_WELCOME],
        )


def test_long_lines_in_shared_text_stay_under_998_octets():
    body = "word " * 600 + "\n" + "ក" * 900
    slow, fast = both(
        names.ANNOUNCEMENT,
        "en",
        to_name="Dara",
        token="Tok4",
        subject="A long one",
        body_text=body,
        body_html=f"<p>{body}</p>",
    )

    assert_valid_bytes(fast)
    assert shape(fast) == shape(slow)
