"""Build an email from its templates: text and HTML, in the recipient's language."""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_format_date
from babel.dates import format_time as babel_format_time
from babel.dates import get_timezone_name
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from emails.i18n import LANGUAGES, load_translations

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
TRANSLATIONS = HERE / "translations"


class HeaderInjection(ValueError):
    """A header value carried a line break: refused rather than folded into a new header."""


@dataclass(frozen=True)
class Sender:
    """Who the mail is from, as configured for the service."""

    from_address: str  # "Name <address>" or a bare address
    reply_to: str
    group_name: str
    group_name_km: str = ""
    list_id: str = ""  # e.g. "Working Group <members.example.org>"

    def group_name_for(self, lang: str) -> str:
        return self.group_name_km if lang == "km" and self.group_name_km else self.group_name

    @property
    def domain(self) -> str:
        return parseaddr(self.from_address)[1].rpartition("@")[2] or "localhost"


@dataclass(frozen=True)
class Unsubscribe:
    """The one-click unsubscribe targets of a list message (RFC 2369 / RFC 8058)."""

    url: str
    mailto: str


def new_message_id(domain: str) -> str:
    return make_msgid(domain=domain)


def check_header(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjection(f"line break in header value {value[:40]!r}")
    return value


def _mailbox(name: str, address: str) -> Address:
    check_header(name)
    check_header(address)
    username, _, domain = address.rpartition("@")
    return Address(display_name=name, username=username, domain=domain)


def _moment(value: datetime | str) -> datetime:
    # Contexts are stored as JSON in the outbox, so moments arrive as ISO strings.
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _format_when(value: datetime | str, lang: str, zone: str, width: str = "full") -> str:
    """A moment as the reader says it: the day, the time without seconds, the zone's name."""
    tz = ZoneInfo(zone)
    moment = _moment(value).astimezone(tz)
    day = babel_format_date(moment, width, locale=lang)
    clock = babel_format_time(moment, "short", tzinfo=tz, locale=lang)
    return f"{day}, {clock} ({get_timezone_name(tz, locale=lang)})"


def _format_day(value: datetime | str, lang: str, zone: str, width: str = "full") -> str:
    return babel_format_date(_moment(value).astimezone(ZoneInfo(zone)), width, locale=lang)


@cache
def environment(lang: str) -> Environment:
    """One Jinja environment per language, so gettext is bound once, not per message."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}")
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.install_gettext_translations(load_translations(str(TRANSLATIONS), lang), newstyle=True)
    env.globals["lang"] = lang
    env.filters["when"] = lambda value, zone="UTC", width="full": _format_when(
        value, lang, zone, width
    )
    env.filters["day"] = lambda value, zone="UTC", width="full": _format_day(
        value, lang, zone, width
    )
    return env


def render(name: str, lang: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) of email `name` in `lang`."""
    env = environment(lang)
    text_template = env.get_template(f"{name}.txt")
    html_template = env.get_template(f"{name}.html")
    subject_block = text_template.blocks["subject"]
    subject = "".join(subject_block(text_template.new_context(dict(context))))
    subject = re.sub(r"\s+", " ", subject).strip()
    text = text_template.render(context)
    html = html_template.render({**context, "subject": subject})
    return subject, _crlf_safe(text), html


def _crlf_safe(text: str) -> str:
    # Collapse runs of blank lines left by template blocks; the policy turns \n into CRLF.
    return re.sub(r"\n{3,}", "\n\n", text.replace("\r\n", "\n")).strip() + "\n"


def compose(
    name: str,
    to: str,
    lang: str,
    *,
    sender: Sender,
    to_name: str = "",
    message_id: str | None = None,
    date: datetime | None = None,
    unsubscribe: Unsubscribe | None = None,
    **ctx: Any,
) -> EmailMessage:
    """The complete message `name` for `to` in `lang`, with every header DESIGN.md lists.

    `message_id` is made by the caller once and kept across retries; a new one is made
    only when none is given.
    """
    context = {**ctx, "group_name": sender.group_name_for(lang), "recipient_name": to_name}
    if unsubscribe is not None:
        context["unsubscribe_url"] = unsubscribe.url
    subject, text, html = render(name, lang, context)

    msg = EmailMessage(policy=email.policy.SMTP)
    from_name, from_address = parseaddr(sender.from_address)
    msg["From"] = _mailbox(from_name, from_address)
    msg["To"] = _mailbox(to_name, to)
    msg["Reply-To"] = check_header(sender.reply_to)
    msg["Subject"] = check_header(subject)
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = check_header(message_id or new_message_id(sender.domain))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    if unsubscribe is not None:
        if sender.list_id:
            msg["List-Id"] = check_header(sender.list_id)
        msg["List-Unsubscribe"] = (
            f"<{check_header(unsubscribe.url)}>, <{check_header(unsubscribe.mailto)}>"
        )
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    msg["Content-Language"] = lang  # after set_content, which drops Content-* headers
    return msg
