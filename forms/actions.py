"""One-button forms behind the links in emails: GET shows them, only their POST acts."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from forms.validators import CleanText, normalise_text


class ConfirmForm(FlaskForm):
    """Confirms an address (double opt-in), or asks for a new link."""


class ReviewForm(FlaskForm):
    decision = RadioField(
        _l("Decision"),
        choices=[SelectChoice("approve", _l("Approve")), SelectChoice("decline", _l("Decline"))],
        validators=[InputRequired(_l("Choose approve or decline."))],
    )
    note = TextAreaField(
        _l("Note (sent to the applicant when declining)"),
        [Length(max=2000), CleanText()],
        filters=[normalise_text],
    )
