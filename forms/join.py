"""The public join form: an organisation, institution or individual advocate asks to join."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    RadioField,
    SelectChoice,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import URL, DataRequired, InputRequired, Length, Optional

from forms.validators import (
    CleanText,
    EmailAddress,
    Phone,
    SingleLine,
    normalise_phone,
    normalise_text,
    web_address,
)

FURTHER_REPRESENTATIVES = 3
NAME_MAX = 200
EMAIL_MAX = 254


class RepresentativeForm(Form):
    """A further representative of the organisation: both name and email, or neither."""

    name = StringField(
        _l("Name"), [Optional(), Length(max=NAME_MAX), SingleLine()], filters=[normalise_text]
    )
    email = StringField(
        _l("Email"), [Optional(), Length(max=EMAIL_MAX), EmailAddress()], filters=[normalise_text]
    )

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        # Optional() ends each field's own checks when it is empty, so the pair is
        # checked here, after both fields.
        valid = super().validate(extra_validators)
        if self.name.data and not self.email.data:
            self.email.errors = [*self.email.errors, _l("Give an email address for this person.")]
            valid = False
        if self.email.data and not self.name.data:
            self.name.errors = [*self.name.errors, _l("Give this person's name.")]
            valid = False
        return valid


class JoinForm(FlaskForm):
    organisation_name = StringField(
        _l("Name of the organisation"),
        [
            DataRequired(_l("Give the name of the organisation.")),
            Length(max=NAME_MAX),
            SingleLine(),
        ],
        filters=[normalise_text],
        description=_l("Individual advocates: give your own name."),
    )
    kind = RadioField(
        _l("The applicant is"),
        choices=[
            SelectChoice("organisation", _l("A civil-society organisation")),
            SelectChoice("institution", _l("An institution")),
            SelectChoice("individual", _l("An individual advocate")),
        ],
        validators=[InputRequired(_l("Choose one."))],
    )
    website = StringField(
        _l("Website (optional)"),
        [
            Optional(),
            Length(max=300),
            URL(message=_l("Enter a full address such as https://example.org.")),
            SingleLine(),
        ],
        filters=[web_address],
    )
    represented_in_cambodia = RadioField(
        _l("Does it have representatives in Cambodia?"),
        choices=[SelectChoice("yes", _l("Yes")), SelectChoice("no", _l("No"))],
        validators=[InputRequired(_l("Choose one."))],
    )
    cambodia_location = StringField(
        _l("Where in Cambodia?"),
        [Length(max=NAME_MAX), SingleLine()],
        filters=[normalise_text],
        description=_l("City or province, for example Phnom Penh or Battambang."),
    )
    name = StringField(
        _l("Your name"),
        [DataRequired(_l("Give your name.")), Length(max=NAME_MAX), SingleLine()],
        filters=[normalise_text],
    )
    role = StringField(
        _l("Your role in the organisation"),
        [DataRequired(_l("Give your role.")), Length(max=NAME_MAX), SingleLine()],
        filters=[normalise_text],
    )
    email = StringField(
        _l("Your email address"),
        [DataRequired(_l("Give your email address.")), Length(max=EMAIL_MAX), EmailAddress()],
        filters=[normalise_text],
    )
    phone = StringField(
        _l("Phone (optional)"), [Optional(), Length(max=40), Phone()], filters=[normalise_phone]
    )
    language = RadioField(
        _l("Preferred language for emails"),
        choices=[SelectChoice("km", "ភាសាខ្មែរ (Khmer)"), SelectChoice("en", "English")],
        validators=[InputRequired(_l("Choose one."))],
    )
    representatives = FieldList(
        FormField(RepresentativeForm),
        min_entries=FURTHER_REPRESENTATIVES,
        max_entries=FURTHER_REPRESENTATIVES,
    )
    work_summary = TextAreaField(
        _l("Your work with victim-survivors"),
        [DataRequired(_l("Tell us briefly about this work.")), Length(max=2000), CleanText()],
        filters=[normalise_text],
        description=_l("A few sentences: who you serve and how. At most 2,000 characters."),
    )
    consent = BooleanField(
        _l("I agree that the working group may contact me by email about its meetings and work."),
        [DataRequired(_l("Tick this box so that we may write to you."))],
    )
    # A field people never see; automated submitters fill it in.
    homepage = StringField(_l("Leave this field empty"), filters=[normalise_text])

    def validate_cambodia_location(self, field: StringField) -> None:
        if self.represented_in_cambodia.data == "yes" and not field.data:
            raise ValidationError(_l("Say where in Cambodia."))

    def validate_email(self, field: StringField) -> None:
        further = [entry.form.email.data for entry in self.representatives]
        if field.data and field.data in further:
            raise ValidationError(_l("List each person once."))

    @property
    def is_spam(self) -> bool:
        return bool(self.homepage.data)

    def further_representatives(self) -> list[dict[str, str]]:
        seen: set[str] = set()
        people = []
        for entry in self.representatives:
            email = entry.form.email.data
            if email and email not in seen:
                seen.add(email)
                people.append({"name": entry.form.name.data, "email": email})
        return people
