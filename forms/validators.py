"""Field validators shared by the public forms."""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from wtforms import Field, Form, ValidationError

from emails.text import has_control_characters

_PHONE = re.compile(r"^\+?[0-9 ()./-]{6,40}$")


class SingleLine:
    """No line breaks or control characters: names and addresses end up in mail headers."""

    def __call__(self, form: Form, field: Field) -> None:
        if field.data and has_control_characters(field.data):
            raise ValidationError(_l("Use a single line without special characters."))


class CleanText:
    """Multi-line text without control characters."""

    def __call__(self, form: Form, field: Field) -> None:
        if field.data and has_control_characters(field.data, multiline=True):
            raise ValidationError(_l("Remove the special characters from this text."))


class EmailAddress:
    """A deliverable-looking address (syntax only; no DNS lookup), stored normalised."""

    def __call__(self, form: Form, field: Field) -> None:
        if not field.data:
            return
        if has_control_characters(field.data):
            raise ValidationError(_l("Enter an email address such as name@example.org."))
        try:
            field.data = mailable_address(field.data)
        except EmailNotValidError:
            raise ValidationError(_l("Enter an email address such as name@example.org.")) from None
        except NonAsciiMailbox:
            raise ValidationError(_l("Write the part before the @ in Latin letters.")) from None


class NonAsciiMailbox(ValueError):
    """An address whose part before the @ is not ASCII (it would need SMTPUTF8 everywhere)."""


def mailable_address(value: str) -> str:
    """The address as mail headers carry it: checked, lower-cased, an international domain
    in its ASCII form (xn--...). Raises EmailNotValidError or NonAsciiMailbox."""
    result = validate_email(value.strip(), check_deliverability=False)
    if result.ascii_email is None:
        raise NonAsciiMailbox(value)
    return result.ascii_email.lower()


def is_phone_number(value: str) -> bool:
    """Digits with spaces, brackets, dots, slashes or hyphens, and an optional leading +."""
    return bool(_PHONE.fullmatch(value))


class Phone:
    def __call__(self, form: Form, field: Field) -> None:
        if field.data and not is_phone_number(field.data.strip()):
            raise ValidationError(
                _l("Enter a phone number with digits, for example +855 12 345 678.")
            )


KHMER_DIGITS = str.maketrans("០១២៣៤៥៦៧៨៩", "0123456789")


def normalise_phone(value: str | None) -> str:
    """A phone number typed with Khmer digits is kept with Western ones, as dialers expect."""
    return normalise_text(value).translate(KHMER_DIGITS)


def normalise_text(value: str | None) -> str:
    """Trimmed, NFC-normalised text (Khmer typed on different keyboards compares equal)."""
    return unicodedata.normalize("NFC", value or "").strip()


def web_address(value: str | None) -> str:
    """A website typed without its scheme (kk-test.org) as the link it names (https://...)."""
    text = normalise_text(value)
    if text and "://" not in text:
        return "https://" + text.lstrip("/")
    return text
