"""The coordinators' console: sign-in and the forms of its pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional, Regexp

from forms.validators import CleanText, SingleLine, normalise_text


def lower_address(value: str | None) -> str:
    return normalise_text(value).lower()


class SignInForm(FlaskForm):
    """The address a sign-in link is sent to, when it is a coordinator's. Only compared with
    the list, so any address-shaped text will do."""

    email = StringField(
        _l("Your email address"),
        [
            InputRequired(_l("Give your email address.")),
            Length(max=254),
            SingleLine(),
            Regexp(
                r"^[^@\s]+@[^@\s]+$", message=_l("Enter an email address such as name@example.org.")
            ),
        ],
        filters=[lower_address],
    )


class ButtonForm(FlaskForm):
    """A form of one button (sign in with a link, sign out): only its CSRF token."""


class AnnouncementForm(FlaskForm):
    """News to the members, in Markdown, in English and (optionally) Khmer."""

    subject_en = StringField(
        _l("Subject in English"),
        [InputRequired(_l("Give a subject.")), Length(max=300), SingleLine()],
        filters=[normalise_text],
    )
    body_en = TextAreaField(
        _l("Text in English"),
        [InputRequired(_l("Write the text.")), Length(max=20000), CleanText()],
        filters=[normalise_text],
        description=_l(
            "Markdown: a blank line between paragraphs, **bold**, *italic*, "
            "- for a list, [words](https://...) for a link."
        ),
    )
    subject_km = StringField(
        _l("Subject in Khmer (optional)"),
        [Optional(), Length(max=300), SingleLine()],
        filters=[normalise_text],
    )
    body_km = TextAreaField(
        _l("Text in Khmer (optional)"),
        [Optional(), Length(max=20000), CleanText()],
        filters=[normalise_text],
        description=_l("Members who read Khmer get this version; without it, the English one."),
    )
    # The key this filled-in form was shown with: sending it twice sends once.
    submission = HiddenField()

    def validate(self, extra_validators=None) -> bool:  # type: ignore[no-untyped-def]
        valid = super().validate(extra_validators)
        if bool(self.subject_km.data) != bool(self.body_km.data):
            missing = self.body_km if self.subject_km.data else self.subject_km
            missing.errors = [
                *missing.errors,
                _l("Give both the Khmer subject and text, or neither."),
            ]
            valid = False
        return valid
