"""The forms of a member's own page: their details, an answer, a colleague, leaving."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from forms.validators import EmailAddress, Phone, SingleLine, normalise_phone, normalise_text

LANGUAGE_CHOICES = [SelectChoice("km", "ភាសាខ្មែរ (Khmer)"), SelectChoice("en", "English")]


class MemberDetailsForm(FlaskForm):
    """What the group knows of a member, and what they want to receive."""

    name = StringField(
        _l("Your name"),
        [DataRequired(_l("Give your name.")), Length(max=200), SingleLine()],
        filters=[normalise_text],
    )
    role = StringField(
        _l("Your role in the organisation"),
        [Optional(), Length(max=200), SingleLine()],
        filters=[normalise_text],
    )
    phone = StringField(
        _l("Phone (optional)"), [Optional(), Length(max=40), Phone()], filters=[normalise_phone]
    )
    language = RadioField(
        _l("Language of the emails"),
        choices=LANGUAGE_CHOICES,
        validators=[InputRequired(_l("Choose one."))],
    )
    announcements = BooleanField(_l("Also send me the working group's news, not only meeting mail"))


class MeetingAnswerForm(FlaskForm):
    """A member's answer to one meeting, changed from their page."""

    answer = RadioField(
        _l("Your answer"),
        choices=[
            SelectChoice("yes", _l("Yes, I will attend")),
            SelectChoice("no", _l("No, I cannot attend")),
            SelectChoice("maybe", _l("Maybe")),
        ],
        validators=[InputRequired(_l("Choose yes, no or maybe."))],
    )


class ColleagueForm(FlaskForm):
    """A colleague of the same organisation who should get the group's mail too."""

    name = StringField(
        _l("Your colleague's name"),
        [DataRequired(_l("Give this person's name.")), Length(max=200), SingleLine()],
        filters=[normalise_text],
    )
    email = StringField(
        _l("Their email address"),
        [
            DataRequired(_l("Give an email address for this person.")),
            Length(max=254),
            EmailAddress(),
        ],
        filters=[normalise_text],
        description=_l("They receive a link to confirm their address before any other mail."),
    )


class LeaveForm(FlaskForm):
    """Leaving the group: one person, or the whole organisation."""

    who = RadioField(
        _l("Who leaves the working group?"),
        choices=[
            SelectChoice("me", _l("Only me: my colleagues stay members")),
            SelectChoice("organisation", _l("Our whole organisation")),
        ],
        validators=[InputRequired(_l("Choose who leaves."))],
    )


class StopMailForm(FlaskForm):
    """One button: stop every email of the group to this address."""
