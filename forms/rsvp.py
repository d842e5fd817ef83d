"""The answer to a meeting invitation, and the one-button unsubscribe form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from forms.validators import CleanText, EmailAddress, SingleLine, normalise_text


class RsvpForm(FlaskForm):
    answer = RadioField(
        _l("Will you attend?"),
        choices=[
            SelectChoice("yes", _l("Yes, I will attend")),
            SelectChoice("no", _l("No, I cannot attend")),
            SelectChoice("maybe", _l("Maybe")),
        ],
        validators=[InputRequired(_l("Choose yes, no or maybe."))],
    )
    note = TextAreaField(
        _l("Note for the coordinator (optional)"),
        [Optional(), Length(max=1000), CleanText()],
        filters=[normalise_text],
    )
    substitute_name = StringField(
        _l("Name of the colleague attending in your place (optional)"),
        [Optional(), Length(max=200), SingleLine()],
        filters=[normalise_text],
    )
    substitute_email = StringField(
        _l("Their email address"),
        [Optional(), Length(max=254), EmailAddress()],
        filters=[normalise_text],
        description=_l(
            "They will receive the meeting details now and the reminder before the meeting."
        ),
    )

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        valid = super().validate(extra_validators)
        if self.substitute_name.data and not self.substitute_email.data:
            self.substitute_email.errors = [
                *self.substitute_email.errors,
                _l("Give an email address for this person."),
            ]
            valid = False
        if self.substitute_email.data and not self.substitute_name.data:
            self.substitute_name.errors = [
                *self.substitute_name.errors,
                _l("Give this person's name."),
            ]
            valid = False
        return valid


class UnsubscribeForm(FlaskForm):
    """One button: GET shows it, only its POST unsubscribes."""


class PreferencesForm(FlaskForm):
    """What a member receives, and in which language."""

    language = RadioField(
        _l("Language of the emails"),
        choices=[SelectChoice("km", "ភាសាខ្មែរ (Khmer)"), SelectChoice("en", "English")],
        validators=[InputRequired(_l("Choose one."))],
    )
    announcements = BooleanField(_l("Also send me the working group's news, not only meeting mail"))
