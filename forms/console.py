"""The coordinators' console: sign-in and the forms of its pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, InputRequired, Length, NumberRange, Optional, Regexp

from forms.validators import (
    CleanText,
    EmailAddress,
    Phone,
    SingleLine,
    normalise_phone,
    normalise_text,
)


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

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        valid = super().validate(extra_validators)
        if bool(self.subject_km.data) != bool(self.body_km.data):
            missing = self.body_km if self.subject_km.data else self.subject_km
            missing.errors = [
                *missing.errors,
                _l("Give both the Khmer subject and text, or neither."),
            ]
            valid = False
        return valid


WEEKDAYS = [
    SelectChoice("MO", _l("Monday")),
    SelectChoice("TU", _l("Tuesday")),
    SelectChoice("WE", _l("Wednesday")),
    SelectChoice("TH", _l("Thursday")),
    SelectChoice("FR", _l("Friday")),
    SelectChoice("SA", _l("Saturday")),
    SelectChoice("SU", _l("Sunday")),
]
ORDINALS = [
    SelectChoice("1", _l("first")),
    SelectChoice("2", _l("second")),
    SelectChoice("3", _l("third")),
    SelectChoice("4", _l("fourth")),
    SelectChoice("-1", _l("last")),
]


class MeetingTextForm(FlaskForm):
    """What a meeting says, in both languages, and where it is."""

    title_en = StringField(
        _l("Title in English"),
        [InputRequired(_l("Give a title.")), Length(max=200), SingleLine()],
        filters=[normalise_text],
    )
    title_km = StringField(
        _l("Title in Khmer (optional)"),
        [Optional(), Length(max=200), SingleLine()],
        filters=[normalise_text],
    )
    location = StringField(
        _l("Place"), [Optional(), Length(max=300), SingleLine()], filters=[normalise_text]
    )
    online_url = StringField(
        _l("Online link (optional)"),
        [
            Optional(),
            Length(max=500),
            URL(message=_l("Enter a link such as https://meet.example/wg.")),
        ],
        filters=[normalise_text],
    )
    agenda_en = TextAreaField(
        _l("Agenda in English"),
        [Optional(), Length(max=5000), CleanText()],
        filters=[normalise_text],
    )
    agenda_km = TextAreaField(
        _l("Agenda in Khmer (optional)"),
        [Optional(), Length(max=5000), CleanText()],
        filters=[normalise_text],
    )
    day = DateField(_l("Day"), [InputRequired(_l("Give the day."))])
    time = TimeField(_l("Starts at"), [InputRequired(_l("Give the time."))])

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        valid = super().validate(extra_validators)
        if not self.location.data and not self.online_url.data:
            self.location.errors = [
                *self.location.errors,
                _l("Give a place, an online link, or both."),
            ]
            valid = False
        if self.online_url.data and not self.online_url.data.lower().startswith(
            ("http://", "https://")
        ):
            self.online_url.errors = [
                *self.online_url.errors,
                _l("Enter a link such as https://meet.example/wg."),
            ]
            valid = False
        return valid


class NewMeetingForm(MeetingTextForm):
    """A one-off meeting or a series, from plain choices."""

    duration = IntegerField(
        _l("Length in minutes"),
        [InputRequired(_l("Give the length.")), NumberRange(15, 24 * 60)],
        default=120,
    )
    repeat = RadioField(
        _l("How often"),
        choices=[
            SelectChoice("once", _l("Once")),
            SelectChoice("monthly_weekday", _l("Every month, on a weekday")),
            SelectChoice("weekly", _l("Every week")),
        ],
        default="once",
        validators=[InputRequired(_l("Choose one."))],
    )
    ordinal = SelectField(_l("Which one in the month"), choices=ORDINALS, default="2")
    weekday = SelectField(_l("Weekday"), choices=WEEKDAYS, default="TH")
    until = DateField(_l("Last day of the series (optional)"), [Optional()])


class EditMeetingForm(MeetingTextForm):
    """A change to one meeting, and whether to tell the invitees of a corrected text."""

    tell = RadioField(
        _l("When only the title or agenda changes"),
        choices=[
            SelectChoice("notice", _l("Send everyone invited a short notice")),
            SelectChoice("nothing", _l("Send nothing (a small correction)")),
        ],
        default="notice",
        validators=[InputRequired(_l("Choose one."))],
    )


class CancelMeetingForm(FlaskForm):
    reason_en = TextAreaField(
        _l("Reason in English"),
        [InputRequired(_l("Give a reason.")), Length(max=1000), CleanText()],
        filters=[normalise_text],
    )
    reason_km = TextAreaField(
        _l("Reason in Khmer"),
        [Optional(), Length(max=1000), CleanText()],
        filters=[normalise_text],
    )


LANGUAGES = [SelectChoice("km", "ភាសាខ្មែរ (Khmer)"), SelectChoice("en", "English")]


class ContactForm(FlaskForm):
    """A contact's details; a new address is confirmed by its owner before it is used."""

    name = StringField(
        _l("Name"),
        [InputRequired(_l("Give the name.")), Length(max=200), SingleLine()],
        filters=[normalise_text],
    )
    role = StringField(
        _l("Role"), [Optional(), Length(max=200), SingleLine()], filters=[normalise_text]
    )
    phone = StringField(
        _l("Phone"), [Optional(), Length(max=40), Phone()], filters=[normalise_phone]
    )
    language = RadioField(
        _l("Language of the emails"),
        choices=LANGUAGES,
        validators=[InputRequired(_l("Choose one."))],
    )
    email = StringField(
        _l("Email"),
        [InputRequired(_l("Give the email address.")), Length(max=254), EmailAddress()],
        filters=[normalise_text],
        description=_l(
            "A new address gets a link to confirm it; until then mail goes to the old one."
        ),
    )


class ColleagueForm(FlaskForm):
    """A further representative of an organisation, who confirms their own address."""

    name = StringField(
        _l("Name"),
        [InputRequired(_l("Give the name.")), Length(max=200), SingleLine()],
        filters=[normalise_text],
    )
    email = StringField(
        _l("Email"),
        [InputRequired(_l("Give the email address.")), Length(max=254), EmailAddress()],
        filters=[normalise_text],
    )
    language = RadioField(
        _l("Language of the emails"),
        choices=LANGUAGES,
        default="km",
        validators=[InputRequired(_l("Choose one."))],
    )


class ReasonForm(FlaskForm):
    """Why a suppressed address may get mail again."""

    reason = TextAreaField(
        _l("Why may this address get mail again?"),
        [InputRequired(_l("Give the reason.")), Length(max=1000), CleanText()],
        filters=[normalise_text],
    )


class EraseForm(FlaskForm):
    understood = BooleanField(
        _l("I understand: this person's name, address and answers are deleted for good."),
        [InputRequired(_l("Tick the box to erase."))],
    )


class MergeForm(FlaskForm):
    into = SelectField(_l("Merge into"), validators=[InputRequired(_l("Choose one."))])


class MinutesForm(FlaskForm):
    """A meeting's minutes in Markdown, English and (optionally) Khmer."""

    body_en = TextAreaField(
        _l("Minutes in English"),
        [InputRequired(_l("Write the text.")), Length(max=50000), CleanText()],
        filters=[normalise_text],
    )
    body_km = TextAreaField(
        _l("Minutes in Khmer (optional)"),
        [Optional(), Length(max=50000), CleanText()],
        filters=[normalise_text],
    )


class SeriesForm(MeetingTextForm):
    """What a series' meetings say and where they are (their days come from its rule)."""

    day = None
    time = None


class EndSeriesForm(FlaskForm):
    last_day = DateField(_l("Last day of the series"), [InputRequired(_l("Give the day."))])
    reason_en = TextAreaField(
        _l("Reason in English, for the meetings cancelled after it"),
        [Optional(), Length(max=1000), CleanText()],
        filters=[normalise_text],
    )
    reason_km = TextAreaField(
        _l("Reason in Khmer"),
        [Optional(), Length(max=1000), CleanText()],
        filters=[normalise_text],
    )
